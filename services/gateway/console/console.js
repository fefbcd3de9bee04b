/*  Relais operations console: the live bus (Server-Sent Events read through
    fetch, so the token travels in the Authorization header, never in a URL),
    open plans, capacity gauges and trends. Plain JS, no dependency. Every
    value from the bus is written with textContent, never as HTML. */
'use strict';

const S = { token: null, ctrl: null, lastId: null, query: '', perMinute: new Map(), rows: 0 };
const MAX_ROWS = 300;
const $ = (sel) => document.querySelector(sel);

function el (tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function setConn (state, text) {
  const pill = $('#conn');
  pill.className = 'pill ' + state;
  pill.textContent = text;
}

async function api (path) {
  try {
    const r = await fetch(path, { headers: { Authorization: 'Bearer ' + S.token } });
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    return { status: r.status, body };
  } catch (e) {
    return { status: 0, body: { message: 'passerelle injoignable' } };
  }
}

function hhmmss (us) {
  const d = new Date(Number(us) / 1000);
  return d.toLocaleTimeString('fr-FR', { hour12: false });
}

function day (us) {
  return new Date(Number(us) / 1000).toLocaleString('fr-FR', { hour12: false, day: '2-digit', month: '2-digit', hour: '2-digit', minute: '2-digit' });
}

/* -- the live stream ------------------------------------------------------ */

function addEvent (ev) {
  const body = ev.body || {};
  const arr = (body.place && body.place.arrondissement) || body.arrondissement || '';
  const level = body.level || 0;
  const tr = el('tr', 'fresh' + (level ? ' level' + level : ''));
  tr.dataset.id = (ev.src || '') + ':' + (ev.seq || '');
  tr.appendChild(el('td', null, hhmmss(ev.ts)));
  tr.appendChild(el('td', null, ev.src + ':' + ev.seq));
  tr.appendChild(el('td', 'type', ev.topic || ev.type));
  tr.appendChild(el('td', null, arr));
  const lv = el('td');
  if (level) lv.appendChild(el('span', 'lvl l' + level, 'N' + level));
  tr.appendChild(lv);
  const pubs = el('td');
  for (const p of (Array.isArray(body.publics) ? body.publics : [])) pubs.appendChild(el('span', 'chip ' + String(p).replace(/[^a-z_]/g, ''), p));
  tr.appendChild(pubs);
  tr.appendChild(el('td', null, body.persons !== undefined ? body.persons : (body.count !== undefined ? body.count : '')));
  tr.appendChild(el('td', null, ev.key));
  const tbody = $('#events tbody');
  tbody.insertBefore(tr, tbody.firstChild);
  while (tbody.children.length > MAX_ROWS) tbody.removeChild(tbody.lastChild);
  $('#stream-note').textContent = '';
  if ((ev.topic || ev.type) === 'signal.created') {
    const minute = Math.floor(Number(ev.ts) / 60e6);
    S.perMinute.set(minute, (S.perMinute.get(minute) || 0) + 1);
    drawLiveTrend();
  }
}

function handleBlock (block) {
  let id = null;
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('id: ')) id = line.slice(4);
    else if (line.startsWith('data: ')) data.push(line.slice(6));
  }
  if (!data.length) return;
  try { addEvent(JSON.parse(data.join('\n'))); } catch (e) { return; }
  if (id) S.lastId = id;
}

async function follow () {
  if (S.ctrl) S.ctrl.abort();
  const ctrl = new AbortController();
  S.ctrl = ctrl;
  const headers = { Authorization: 'Bearer ' + S.token };
  let url = '/v1/events?' + S.query;
  if (S.lastId) headers['Last-Event-ID'] = S.lastId;     // resume: no gap, no duplicate
  else url += (S.query ? '&' : '') + 'last=50';
  setConn('wait', 'connexion…');
  try {
    const r = await fetch(url, { headers, signal: ctrl.signal });
    if (r.status === 401 || r.status === 403) {
      setConn('off', 'jeton refusé');
      $('#stream-note').textContent = 'Ce jeton ne permet pas de lire le bus (rôle « opérations » requis).';
      return;
    }
    if (!r.ok) throw new Error('HTTP ' + r.status);
    setConn('on', 'en direct');
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        handleBlock(buf.slice(0, i));
        buf = buf.slice(i + 2);
      }
    }
  } catch (e) {
    if (ctrl.signal.aborted) return;
  }
  if (S.ctrl !== ctrl) return;
  setConn('wait', 'reconnexion…');
  setTimeout(() => { if (S.ctrl === ctrl) follow(); }, 2000);
}

function drawLiveTrend () {
  const svg = $('#live-trend');
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const now = Math.floor(Date.now() / 60000);
  const values = [];
  for (let m = now - 29; m <= now; m++) values.push(S.perMinute.get(m) || 0);
  bars(svg, values, 300, 80);
}

function bars (svg, values, width, height) {
  const max = Math.max(1, ...values);
  const w = width / values.length;
  values.forEach((v, i) => {
    const h = (v / max) * (height - 10);
    const r = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
    r.setAttribute('x', String(i * w + 1));
    r.setAttribute('y', String(height - h));
    r.setAttribute('width', String(Math.max(1, w - 2)));
    r.setAttribute('height', String(h));
    r.setAttribute('fill', '#1f4e9c');
    const t = document.createElementNS('http://www.w3.org/2000/svg', 'title');
    t.textContent = String(v);
    r.appendChild(t);
    svg.appendChild(r);
  });
}

/* -- panels fed by service APIs -------------------------------------------- */

function panelBody (id) {
  const body = $('#' + id + ' .body');
  while (body.firstChild) body.removeChild(body.firstChild);
  return body;
}

function unavailable (id, service, reply) {
  const body = panelBody(id);
  const msg = reply.body && reply.body.message ? reply.body.message : 'HTTP ' + reply.status;
  const absent = /not configured/.test(msg);
  body.appendChild(el('p', 'unavailable', 'Service « ' + service + ' » ' + (absent ? 'non configuré dans ce déploiement' : 'indisponible')));
  body.appendChild(el('p', 'note', msg));
}

function isOverdue (a) {
  if (a.overdue === true) return true;
  const closed = ['done', 'fait', 'closed', 'clos', 'cancelled', 'annule'];
  return a.due && Number(a.due) / 1000 < Date.now() && !closed.includes(a.state);
}

async function loadPlans () {
  const r = await api('/v1/plans?state=open');
  if (r.status !== 200 || !r.body) return unavailable('plans', 'plans', r);
  const body = panelBody('plans');
  const plans = r.body.plans || r.body.items || [];
  if (!plans.length) body.appendChild(el('p', 'note', 'Aucun plan ouvert.'));
  for (const p of plans) {
    const div = el('div', 'plan');
    const head = el('div', 'head');
    head.appendChild(el('strong', null, p.id || p.key));
    head.appendChild(el('span', null, (p.arrondissement ? p.arrondissement + 'e · ' : '') + (p.state || '')));
    div.appendChild(head);
    const actions = Array.isArray(p.actions) ? p.actions : [];
    const ul = el('ul');
    for (const a of actions) {
      const late = isOverdue(a);
      const li = el('li', late ? 'overdue' : null, (a.kind || 'action') + ' — ' + (a.owner || '?') +
        (a.due ? ' · échéance ' + day(a.due) : '') + (a.state ? ' · ' + a.state : '') + (late ? ' · EN RETARD' : ''));
      ul.appendChild(li);
    }
    if (actions.length) div.appendChild(ul);
    body.appendChild(div);
  }
}

async function loadCapacity () {
  const r = await api('/v1/capacity');
  if (r.status !== 200 || !r.body) return unavailable('capacity', 'capacity', r);
  const body = panelBody('capacity');
  const byKind = new Map();
  const rows = r.body.kinds || r.body.structures || [];
  for (const s of rows) {
    const k = byKind.get(s.kind) || { kind: s.kind, places: 0, occupied: 0, reserved: 0, forecast: null };
    k.places += Number(s.places || 0);
    k.occupied += Number(s.occupied || 0);
    k.reserved += Number(s.reserved || 0);
    if (s.forecast) k.forecast = s.forecast;
    byKind.set(s.kind, k);
  }
  for (const f of (r.body.forecasts || [])) if (byKind.has(f.kind)) byKind.get(f.kind).forecast = f;
  if (!byKind.size) body.appendChild(el('p', 'note', 'Aucune structure déclarée.'));
  for (const k of byKind.values()) {
    const used = k.occupied + k.reserved;
    const pct = k.places ? Math.min(100, Math.round(100 * used / k.places)) : 0;
    const g = el('div', 'gauge');
    const label = el('div', 'label');
    label.appendChild(el('strong', null, k.kind));
    label.appendChild(el('span', null, (k.places - used) + ' libres / ' + k.places + ' (' + pct + ' %)'));
    g.appendChild(label);
    const bar = el('div', 'bar');
    const fill = el('div', pct >= 95 ? 'full' : pct >= 80 ? 'high' : null);
    fill.style.width = pct + '%';
    bar.appendChild(fill);
    g.appendChild(bar);
    if (k.forecast) {
      const f = k.forecast;
      g.appendChild(el('div', 'forecast', 'prévision : ' + (f.slope_per_day > 0 ? '+' : '') + (f.slope_per_day || 0) +
        ' places/jour' + (f.days_to_full !== undefined ? ' · saturation dans ' + f.days_to_full + ' j' : '')));
    }
    body.appendChild(g);
  }
}

async function loadTrends () {
  const r = await api('/v1/analytics/query?metric=signals&by=day');
  if (r.status !== 200 || !r.body) return unavailable('trends', 'analytics', r);
  const body = panelBody('trends');
  const series = r.body.series || r.body.rows || [];
  if (!series.length) { body.appendChild(el('p', 'note', 'Pas encore de données.')); return; }
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 300 80');
  svg.setAttribute('preserveAspectRatio', 'none');
  bars(svg, series.map((p) => Number(p.value !== undefined ? p.value : p.count || 0)), 300, 80);
  body.appendChild(el('h3', null, 'Signalements par jour (analytics)'));
  body.appendChild(svg);
}

function refreshPanels () {
  if (!S.token) return;
  loadPlans();
  loadCapacity();
  loadTrends();
}

/* -- wiring ------------------------------------------------------------------ */

function start (token) {
  S.token = token;
  S.lastId = null;
  sessionStorage.setItem('relais-token', token);
  follow();
  refreshPanels();
}

document.addEventListener('DOMContentLoaded', () => {
  const arr = $('#arr');
  for (let i = 1; i <= 20; i++) arr.appendChild(el('option', null, String(i)));
  $('#login').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('#token').value.trim();
    if (t) start(t);
  });
  $('#filters').addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(e.target)) if (v) q.append(k, v);
    S.query = q.toString();
    S.lastId = null;                      // a new filter: fresh history
    const tbody = $('#events tbody');
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    if (S.token) follow();
  });
  // A token in the fragment (never sent to the server) is taken once, then removed
  const m = /token=([^&]+)/.exec(location.hash);
  if (m) history.replaceState(null, '', location.pathname);
  const token = m ? decodeURIComponent(m[1]) : sessionStorage.getItem('relais-token');
  if (token) start(token);
  drawLiveTrend();
  setInterval(refreshPanels, 15000);
  setInterval(drawLiveTrend, 30000);
});
