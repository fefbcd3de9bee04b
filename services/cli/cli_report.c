/*  =========================================================================
    cli_report - `relais report`: an HTML page of a period's indicators

    @header
    Asks analytics (analytics.query with suppress: true, and
    analytics.trends) for the period's figures and writes, into a folder:
    index.html, a self-contained page whose SVG charts this file draws
    (reports per day by level, a heat grid of the 20 arrondissements,
    publics, delays, capacity), and one CSV per chart holding exactly the
    numbers the chart shows.
    @discuss
    Privacy: the service suppresses counts from 1 to suppress_below - 1;
    the CSV says "<N" there and the chart draws nothing for them (they
    count as 0 in the bars). Text from the service (group names) is
    HTML-escaped.
    =========================================================================
*/
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define S_ROWS_MAX  512

const char cli_report_help [] =
    "usage: relais report --period P --out DIR [--api ENDPOINT]\n"
    "\n"
    "Write DIR/index.html: the period's indicators as SVG charts drawn by\n"
    "Relais itself (no script, no network), and beside it the CSV behind\n"
    "every chart:\n"
    "  reports_by_day_level.csv   reports per day, level 1 and level 2\n"
    "  arrondissements.csv        reports per arrondissement (heat grid)\n"
    "  publics.csv                reports naming each public\n"
    "  delays.csv                 median and 90th percentile of the time to the\n"
    "                             first acknowledgement and to shelter, per day\n"
    "  capacity.csv               places, occupied and free places by kind at\n"
    "                             the end of the period\n"
    "  trends.csv                 the period against the one before and a year\n"
    "                             earlier\n"
    "\n"
    "Counts under the service's suppress_below (5 by default) are shown as\n"
    "\"<5\" and drawn as empty.\n"
    "\n"
    "flags:\n"
    "  --period P       2026-W47 (an ISO week), 2026-11 (a month) or 2026-11-20\n"
    "  --out DIR        the folder to write (created if needed)\n"
    "  --api ENDPOINT   analytics' api endpoint (default: analytics/api of the\n"
    "                   configuration)\n"
    "\n"
    "examples:\n"
    "  relais report --period 2026-W47 --out /tmp/w47 && xdg-open /tmp/w47/index.html\n"
    "\n"
    "exit codes:\n"
    "  0  written\n"
    "  1  analytics did not answer or refused, or a file could not be written\n"
    "  2  usage error\n";

typedef struct {
    char period [16];
    char group [64];
    double value;
    double p50, p90;
    bool suppressed;
    double count;
} s_row_t;

typedef struct {
    s_row_t rows [S_ROWS_MAX];
    size_t count;
    char from [16], to [16];
} s_table_t;

typedef struct {
    cli_t *cli;
    zsock_t *dealer;
    const char *period;
    const char *dir;
    FILE *html;
    int suppress_below;
    int failures;
} s_report_t;

static double
s_num (const msgpack_object *o)
{
    if (!o)
        return 0;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (double) o->via.u64;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return (double) o->via.i64;
    if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
        return o->via.f64;
    return 0;
}

static void
s_copy_clean (const msgpack_object *o, char *buf, size_t size)
{
    if (relais_msg_str_copy (o, buf, size) < 0 || !relais_utf8_clean (buf, strlen (buf), false))
        snprintf (buf, size, "?");
}

//  One analytics.query; fills table. Returns 0 or -1 (said why).
static int
s_query (s_report_t *self, const char *indicator, const char *group_by,
         const char *granularity, s_table_t *table)
{
    memset (table, 0, sizeof *table);
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &body, msgpack_sbuffer_write);
    relais_pack_kv_str (&pk, "op", "analytics.query");
    relais_pack_kv_str (&pk, "indicator", indicator);
    relais_pack_kv_str (&pk, "group_by", group_by? group_by: "none");
    relais_pack_kv_str (&pk, "granularity", granularity);
    relais_pack_kv_str (&pk, "period", self->period);
    relais_pack_kv_bool (&pk, "suppress", true);
    zframe_t *frame = NULL;
    relais_msg_t msg;
    int rc = cli_analytics_call (self->dealer, &body, 6, &frame, &msg);
    msgpack_sbuffer_destroy (&body);
    if (rc) {
        fprintf (stderr, "relais report: analytics did not answer\n");
        return -1;
    }
    const msgpack_object *root = &msg.root;
    const msgpack_object *ok = relais_msg_get (root, "ok");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean) {
        char message [256] = "";
        s_copy_clean (relais_msg_get (root, "message"), message, sizeof message);
        fprintf (stderr, "relais report: %s refused: %s\n", indicator, message);
        relais_msg_release (&msg);
        zframe_destroy (&frame);
        return -1;
    }
    uint64_t below = 0;
    if (relais_msg_uint (relais_msg_get (root, "suppress_below"), &below) && below)
        self->suppress_below = (int) below;
    s_copy_clean (relais_msg_get (root, "from"), table->from, sizeof table->from);
    s_copy_clean (relais_msg_get (root, "to"), table->to, sizeof table->to);
    const msgpack_object *rows = relais_msg_get (root, "rows");
    for (uint32_t i = 0; rows && rows->type == MSGPACK_OBJECT_ARRAY && i < rows->via.array.size
                         && table->count < S_ROWS_MAX; i++) {
        const msgpack_object *row = &rows->via.array.ptr [i];
        s_row_t *r = &table->rows [table->count++];
        s_copy_clean (relais_msg_get (row, "period"), r->period, sizeof r->period);
        s_copy_clean (relais_msg_get (row, "group"), r->group, sizeof r->group);
        const msgpack_object *sup = relais_msg_get (row, "suppressed");
        r->suppressed = sup && sup->type == MSGPACK_OBJECT_BOOLEAN && sup->via.boolean;
        r->value = s_num (relais_msg_get (row, "value"));
        r->p50 = s_num (relais_msg_get (row, "p50"));
        r->p90 = s_num (relais_msg_get (row, "p90"));
        r->count = s_num (relais_msg_get (row, "count"));
    }
    relais_msg_release (&msg);
    zframe_destroy (&frame);
    return 0;
}

//  Every day from..to ("YYYY-MM-DD"), at most max; returns the count
static size_t
s_period_days (const char *from, const char *to, char days [][16], size_t max)
{
    struct tm tm;
    memset (&tm, 0, sizeof tm);
    if (sscanf (from, "%4d-%2d-%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) != 3)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_hour = 12;
    time_t t = timegm (&tm);
    size_t n = 0;
    while (n < max) {
        struct tm day;
        gmtime_r (&t, &day);
        strftime (days [n], 16, "%Y-%m-%d", &day);
        if (strcmp (days [n++], to) >= 0)
            break;
        t += 86400;
    }
    return n;
}

static void
s_html_text (FILE *out, const char *text)
{
    for (const char *p = text; *p; p++)
        switch (*p) {
            case '&': fputs ("&amp;", out); break;
            case '<': fputs ("&lt;", out); break;
            case '>': fputs ("&gt;", out); break;
            case '"': fputs ("&quot;", out); break;
            case '\'': fputs ("&#39;", out); break;
            default: fputc (*p, out);
        }
}

//  CSV text field: quoted when it holds a comma or a quote
static void
s_csv_text (FILE *out, const char *text)
{
    if (!strpbrk (text, ",\"")) {
        fputs (text, out);
        return;
    }
    fputc ('"', out);
    for (const char *p = text; *p; p++) {
        if (*p == '"')
            fputc ('"', out);
        fputc (*p, out);
    }
    fputc ('"', out);
}

static FILE *
s_csv_open (s_report_t *self, const char *name, const char *header)
{
    char path [1024];
    snprintf (path, sizeof path, "%s/%s", self->dir, name);
    FILE *out = fopen (path, "w");
    if (!out) {
        fprintf (stderr, "relais report: cannot write %s: %s\n", path, strerror (errno));
        self->failures++;
        return NULL;
    }
    fprintf (out, "%s\n", header);
    return out;
}

static void
s_csv_close (s_report_t *self, FILE *out)
{
    if (out && fclose (out) != 0)
        self->failures++;
}

static void
s_csv_value (FILE *out, s_report_t *self, const s_row_t *row, double value, const char *format)
{
    if (row->suppressed)
        fprintf (out, "<%d", self->suppress_below);
    else
        fprintf (out, format, value);
}

static void
s_chart_head (s_report_t *self, const char *id, const char *title, const char *csv,
              int width, int height)
{
    fprintf (self->html, "<section class=\"chart\" id=\"%s\">\n<h2>", id);
    s_html_text (self->html, title);
    fprintf (self->html, "</h2>\n<p class=\"csv\"><a href=\"%s\">%s</a></p>\n"
             "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
             "viewBox=\"0 0 %d %d\" role=\"img\">\n", csv, csv, width, height, width, height);
}

static void
s_chart_tail (s_report_t *self)
{
    fputs ("</svg>\n</section>\n", self->html);
}

//  A "nice" axis maximum above value
static double
s_axis_max (double value)
{
    if (value <= 0)
        return 1;
    double step = pow (10, floor (log10 (value)));
    for (double m = 1; ; m += 1)
        if (m * step >= value)
            return m * step;
}

static void
s_bar (s_report_t *self, double x, double y, double w, double h, const char *color,
       const char *label, double value)
{
    fprintf (self->html, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
             "fill=\"%s\" data-value=\"%g\"><title>", x, y, w, h, color, value);
    s_html_text (self->html, label);
    fprintf (self->html, ": %g</title></rect>\n", value);
}

static void
s_axis (s_report_t *self, int left, int top, int width, int height, double max, const char *unit)
{
    FILE *out = self->html;
    fprintf (out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#444\"/>\n",
             left, top + height, left + width, top + height);
    for (int i = 0; i <= 4; i++) {
        double v = max * i / 4;
        double y = top + height - height * i / 4.0;
        fprintf (out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                 "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%g%s</text>\n",
                 left, y, left + width, y, left - 4, y + 4, v, unit);
    }
}

//  Chart 1: reports per day, stacked by level
static void
s_chart_days (s_report_t *self)
{
    s_table_t *t = (s_table_t *) calloc (1, sizeof *t);
    if (!t || s_query (self, "reports", "level", "day", t)) {
        self->failures++;
        free (t);
        return;
    }
    FILE *csv = s_csv_open (self, "reports_by_day_level.csv", "day,level,reports");
    //  the days of the period, in order
    char days [64][16];
    double level [64][3];
    memset (level, 0, sizeof level);
    size_t ndays = s_period_days (t->from, t->to, days, 64);
    for (size_t i = 0; i < t->count; i++) {
        const s_row_t *r = &t->rows [i];
        size_t d = 0;
        while (d < ndays && strcmp (days [d], r->period) != 0)
            d++;
        if (d == ndays && ndays < 64)
            snprintf (days [ndays++], 16, "%s", r->period);
        if (d == 64)
            continue;
        int l = atoi (r->group);
        if (l >= 1 && l <= 2 && !r->suppressed)
            level [d][l] = r->value;
        if (csv) {
            fprintf (csv, "%s,%s,", r->period, r->group);
            s_csv_value (csv, self, r, r->value, "%.0f");
            fputc ('\n', csv);
        }
    }
    s_csv_close (self, csv);
    double max = 0;
    for (size_t d = 0; d < ndays; d++)
        if (level [d][1] + level [d][2] > max)
            max = level [d][1] + level [d][2];
    max = s_axis_max (max);
    int left = 50, top = 20, width = 640, height = 220;
    s_chart_head (self, "days", "Reports per day, by level", "reports_by_day_level.csv",
                  left + width + 20, top + height + 60);
    s_axis (self, left, top, width, height, max, "");
    double slot = ndays? (double) width / (double) ndays: width;
    for (size_t d = 0; d < ndays; d++) {
        double x = left + slot * (double) d + slot * 0.15, w = slot * 0.7;
        double h1 = height * level [d][1] / max, h2 = height * level [d][2] / max;
        char label [64];
        snprintf (label, sizeof label, "%.15s level 1", days [d]);
        s_bar (self, x, top + height - h1, w, h1, "#4a90c2", label, level [d][1]);
        snprintf (label, sizeof label, "%.15s level 2", days [d]);
        s_bar (self, x, top + height - h1 - h2, w, h2, "#d9534f", label, level [d][2]);
        fprintf (self->html, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%s</text>\n",
                 x + w / 2, top + height + 16, days [d] + 5);
    }
    fprintf (self->html, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"#4a90c2\"/>"
             "<text x=\"%d\" y=\"%d\" font-size=\"12\">level 1</text>"
             "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"#d9534f\"/>"
             "<text x=\"%d\" y=\"%d\" font-size=\"12\">level 2 (MUS)</text>\n",
             left, top + height + 32, left + 16, top + height + 42,
             left + 90, top + height + 32, left + 106, top + height + 42);
    s_chart_tail (self);
    free (t);
}

//  Chart 2: the 20 arrondissements as a heat grid (5 columns, 4 rows)
static void
s_chart_grid (s_report_t *self)
{
    s_table_t *t = (s_table_t *) calloc (1, sizeof *t);
    if (!t || s_query (self, "reports", "arrondissement", "total", t)) {
        self->failures++;
        free (t);
        return;
    }
    double value [21] = { 0 };
    bool hidden [21] = { false };
    FILE *csv = s_csv_open (self, "arrondissements.csv", "arrondissement,reports");
    for (size_t i = 0; i < t->count; i++) {
        int a = atoi (t->rows [i].group);
        if (a < 1 || a > 20)
            continue;
        value [a] = t->rows [i].suppressed? 0: t->rows [i].value;
        hidden [a] = t->rows [i].suppressed;
    }
    double max = 0;
    for (int a = 1; a <= 20; a++) {
        if (value [a] > max)
            max = value [a];
        if (csv) {
            s_row_t row = { "", "", value [a], 0, 0, hidden [a], value [a] };
            fprintf (csv, "%d,", a);
            s_csv_value (csv, self, &row, value [a], "%.0f");
            fputc ('\n', csv);
        }
    }
    s_csv_close (self, csv);
    int cell = 90;
    s_chart_head (self, "arrondissements", "Reports by arrondissement (heat grid)",
                  "arrondissements.csv", 5 * cell + 20, 4 * cell + 20);
    for (int a = 1; a <= 20; a++) {
        int col = (a - 1) % 5, row = (a - 1) / 5;
        double k = max > 0? value [a] / max: 0;
        int r = (int) (255 - k * (255 - 180)), g = (int) (245 - k * 200), b = (int) (235 - k * 200);
        char color [16], label [32];
        snprintf (color, sizeof color, "#%02x%02x%02x", r, g, b);
        snprintf (label, sizeof label, "arrondissement %d", a);
        s_bar (self, 10 + col * cell, 10 + row * cell, cell - 4, cell - 4, color, label, value [a]);
        fprintf (self->html, "<text x=\"%d\" y=\"%d\" font-size=\"13\" text-anchor=\"middle\">%d%s</text>\n"
                 "<text x=\"%d\" y=\"%d\" font-size=\"18\" font-weight=\"bold\" text-anchor=\"middle\">",
                 10 + col * cell + (cell - 4) / 2, 10 + row * cell + 22, a, a == 1? "er": "e",
                 10 + col * cell + (cell - 4) / 2, 10 + row * cell + 55);
        if (hidden [a])
            fprintf (self->html, "&lt;%d", self->suppress_below);
        else
            fprintf (self->html, "%.0f", value [a]);
        fputs ("</text>\n", self->html);
    }
    s_chart_tail (self);
    free (t);
}

//  Horizontal bars of one table (publics, capacity)
static void
s_hbars (s_report_t *self, const char *id, const char *title, const char *csv_name,
         s_table_t *t, const char *color)
{
    double max = 0;
    for (size_t i = 0; i < t->count; i++)
        if (!t->rows [i].suppressed && t->rows [i].value > max)
            max = t->rows [i].value;
    max = s_axis_max (max);
    int left = 190, width = 460, bar = 22;
    int height = (int) t->count * bar + 30;
    s_chart_head (self, id, title, csv_name, left + width + 60, height + 10);
    for (size_t i = 0; i < t->count; i++) {
        const s_row_t *r = &t->rows [i];
        double v = r->suppressed? 0: r->value;
        double w = width * v / max;
        int y = 10 + (int) i * bar;
        fputs ("<text x=\"", self->html);
        fprintf (self->html, "%d\" y=\"%d\" font-size=\"12\" text-anchor=\"end\">", left - 6, y + 15);
        s_html_text (self->html, r->group);
        fputs ("</text>\n", self->html);
        s_bar (self, left, y + 2, w > 0? w: 0, bar - 6, color, r->group, v);
        fprintf (self->html, "<text x=\"%.1f\" y=\"%d\" font-size=\"12\">", left + w + 4, y + 15);
        if (r->suppressed)
            fprintf (self->html, "&lt;%d", self->suppress_below);
        else
            fprintf (self->html, "%g", v);
        fputs ("</text>\n", self->html);
    }
    s_chart_tail (self);
}

static void
s_chart_publics (s_report_t *self)
{
    s_table_t *t = (s_table_t *) calloc (1, sizeof *t);
    if (!t || s_query (self, "reports", "public", "total", t)) {
        self->failures++;
        free (t);
        return;
    }
    FILE *csv = s_csv_open (self, "publics.csv", "public,reports");
    for (size_t i = 0; csv && i < t->count; i++) {
        s_csv_text (csv, t->rows [i].group);
        fputc (',', csv);
        s_csv_value (csv, self, &t->rows [i], t->rows [i].value, "%.0f");
        fputc ('\n', csv);
    }
    s_csv_close (self, csv);
    s_hbars (self, "publics", "Reports naming each public (a report may name several)",
             "publics.csv", t, "#5cb85c");
    free (t);
}

//  Chart 4: delays per day (minutes): p50 and p90 of both delays
static void
s_chart_delays (s_report_t *self)
{
    s_table_t *ack = (s_table_t *) calloc (1, sizeof *ack);
    s_table_t *shl = (s_table_t *) calloc (1, sizeof *shl);
    if (!ack || !shl || s_query (self, "ack_delay", NULL, "day", ack)
    ||  s_query (self, "shelter_delay", NULL, "day", shl)) {
        self->failures++;
        free (ack);
        free (shl);
        return;
    }
    FILE *csv = s_csv_open (self, "delays.csv", "day,delay,count,p50_min,p90_min");
    s_table_t *tables [2] = { ack, shl };
    const char *names [2] = { "acknowledgement", "shelter" };
    for (int k = 0; k < 2 && csv; k++)
        for (size_t i = 0; i < tables [k]->count; i++) {
            const s_row_t *r = &tables [k]->rows [i];
            fprintf (csv, "%s,%s,", r->period, names [k]);
            if (r->suppressed)
                fprintf (csv, "<%d,,\n", self->suppress_below);
            else
                fprintf (csv, "%.0f,%.1f,%.1f\n", r->count, r->p50 / 60, r->p90 / 60);
        }
    s_csv_close (self, csv);
    double max = 0;
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < tables [k]->count; i++)
            if (!tables [k]->rows [i].suppressed && tables [k]->rows [i].p90 / 60 > max)
                max = tables [k]->rows [i].p90 / 60;
    max = s_axis_max (max);
    int left = 50, top = 20, width = 640, height = 200;
    s_chart_head (self, "delays", "Time to first acknowledgement and to shelter (minutes: median, 90th percentile)",
                  "delays.csv", left + width + 20, top + height + 60);
    s_axis (self, left, top, width, height, max, "");
    //  one slot per day of the period that has a delay
    char days [64][16];
    size_t ndays = s_period_days (ack->from, ack->to, days, 64);
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < tables [k]->count; i++) {
            size_t d = 0;
            while (d < ndays && strcmp (days [d], tables [k]->rows [i].period) != 0)
                d++;
            if (d == ndays && ndays < 64)
                snprintf (days [ndays++], 16, "%s", tables [k]->rows [i].period);
        }
    double slot = ndays? (double) width / (double) ndays: width;
    const char *colors [2][2] = { { "#4a90c2", "#a6c8e4" }, { "#f0ad4e", "#f7d7a8" } };
    for (size_t d = 0; d < ndays; d++) {
        for (int k = 0; k < 2; k++)
            for (size_t i = 0; i < tables [k]->count; i++) {
                const s_row_t *r = &tables [k]->rows [i];
                if (strcmp (r->period, days [d]) != 0 || r->suppressed)
                    continue;
                double w = slot * 0.18;
                double x = left + slot * (double) d + slot * 0.1 + (double) k * 2 * w;
                double h50 = height * r->p50 / 60 / max, h90 = height * r->p90 / 60 / max;
                char label [96];
                snprintf (label, sizeof label, "%.15s %s p50 (min)", days [d], names [k]);
                s_bar (self, x, top + height - h50, w, h50, colors [k][0], label, round (r->p50 / 6) / 10);
                snprintf (label, sizeof label, "%.15s %s p90 (min)", days [d], names [k]);
                s_bar (self, x + w, top + height - h90, w, h90, colors [k][1], label, round (r->p90 / 6) / 10);
            }
        fprintf (self->html, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%s</text>\n",
                 left + slot * (double) d + slot / 2, top + height + 16, days [d] + 5);
    }
    if (ack->count + shl->count == 0)
        fprintf (self->html, "<text x=\"%d\" y=\"%d\" font-size=\"13\">no acknowledgement or shelter in this period</text>\n",
                 left + 20, top + height / 2);
    fprintf (self->html, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"#4a90c2\"/>"
             "<text x=\"%d\" y=\"%d\" font-size=\"12\">first acknowledgement</text>"
             "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"#f0ad4e\"/>"
             "<text x=\"%d\" y=\"%d\" font-size=\"12\">shelter (light: 90th percentile)</text>\n",
             left, top + height + 32, left + 16, top + height + 42,
             left + 170, top + height + 32, left + 186, top + height + 42);
    s_chart_tail (self);
    free (ack);
    free (shl);
}

//  Chart 5: capacity by kind at the end of the period
static void
s_chart_capacity (s_report_t *self)
{
    const char *indicators [3] = { "capacity_places", "capacity_occupied", "capacity_free" };
    s_table_t *t = (s_table_t *) calloc (4, sizeof *t);
    if (!t) {
        self->failures++;
        return;
    }
    for (int k = 0; k < 3; k++)
        if (s_query (self, indicators [k], "kind", "total", &t [k])) {
            self->failures++;
            free (t);
            return;
        }
    FILE *csv = s_csv_open (self, "capacity.csv", "kind,places,occupied,free");
    s_table_t *both = &t [3];
    for (size_t i = 0; i < t [0].count; i++) {
        const char *kind = t [0].rows [i].group;
        double v [3] = { t [0].rows [i].value, 0, 0 };
        for (int k = 1; k < 3; k++)
            for (size_t j = 0; j < t [k].count; j++)
                if (strcmp (t [k].rows [j].group, kind) == 0)
                    v [k] = t [k].rows [j].value;
        if (csv) {
            s_csv_text (csv, kind);
            fprintf (csv, ",%.0f,%.0f,%.0f\n", v [0], v [1], v [2]);
        }
        for (int k = 1; k < 3 && both->count + 1 < S_ROWS_MAX; k++) {
            s_row_t *r = &both->rows [both->count++];
            snprintf (r->group, sizeof r->group, "%.40s %s", kind, k == 1? "occupied": "free");
            r->value = v [k];
        }
    }
    s_csv_close (self, csv);
    s_hbars (self, "capacity", "Shelter capacity by kind at the end of the period (occupied, free)",
             "capacity.csv", both, "#8e6bbf");
    free (t);
}

static void
s_trends (s_report_t *self)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init (&body);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &body, msgpack_sbuffer_write);
    relais_pack_kv_str (&pk, "op", "analytics.trends");
    relais_pack_kv_str (&pk, "indicator", "reports");
    relais_pack_kv_str (&pk, "period", self->period);
    zframe_t *frame = NULL;
    relais_msg_t msg;
    int rc = cli_analytics_call (self->dealer, &body, 3, &frame, &msg);
    msgpack_sbuffer_destroy (&body);
    if (rc) {
        self->failures++;
        return;
    }
    FILE *csv = s_csv_open (self, "trends.csv", "comparison,from,to,value,change,change_pct,sign");
    FILE *out = self->html;
    fputs ("<section id=\"trends\"><h2>Trends: reports</h2>\n<table>\n"
           "<tr><th>period</th><th>from</th><th>to</th><th>reports</th><th>change</th><th>%</th></tr>\n", out);
    const char *keys [3] = { "current", "previous", "year_ago" };
    const char *labels [3] = { "this period", "the period before", "a year earlier" };
    for (int k = 0; k < 3; k++) {
        const msgpack_object *o = relais_msg_get (&msg.root, keys [k]);
        if (!o)
            continue;
        char from [16], to [16], sign [4] = "";
        s_copy_clean (relais_msg_get (o, "from"), from, sizeof from);
        s_copy_clean (relais_msg_get (o, "to"), to, sizeof to);
        if (k)
            s_copy_clean (relais_msg_get (o, "sign"), sign, sizeof sign);
        double value = s_num (relais_msg_get (o, "value"));
        double change = s_num (relais_msg_get (o, "change"));
        const msgpack_object *pct = relais_msg_get (o, "change_pct");
        fprintf (out, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%.0f</td><td>", labels [k],
                 from, to, value);
        if (k)
            fprintf (out, "%+.0f", change);
        fputs ("</td><td>", out);
        if (k && pct && pct->type != MSGPACK_OBJECT_NIL)
            fprintf (out, "%+.1f%%", s_num (pct));
        fputs ("</td></tr>\n", out);
        if (csv) {
            fprintf (csv, "%s,%s,%s,%.0f,", keys [k], from, to, value);
            if (k) {
                fprintf (csv, "%.0f,", change);
                if (pct && pct->type != MSGPACK_OBJECT_NIL)
                    fprintf (csv, "%.1f", s_num (pct));
                fprintf (csv, ",%s", sign);
            }
            else
                fputs (",,", csv);
            fputc ('\n', csv);
        }
    }
    fputs ("</table>\n<p class=\"note\">change: this period minus the other one.</p>\n", out);
    const msgpack_object *movers = relais_msg_get (&msg.root, "movers");
    for (uint32_t m = 0; movers && movers->type == MSGPACK_OBJECT_MAP && m < movers->via.map.size; m++) {
        char dim [32];
        s_copy_clean (&movers->via.map.ptr [m].key, dim, sizeof dim);
        const msgpack_object *list = &movers->via.map.ptr [m].val;
        fputs ("<h3>Moved most against the period before, by ", out);
        s_html_text (out, dim);
        fputs ("</h3>\n<ul>\n", out);
        for (uint32_t i = 0; list->type == MSGPACK_OBJECT_ARRAY && i < list->via.array.size; i++) {
            const msgpack_object *o = &list->via.array.ptr [i];
            char group [64];
            s_copy_clean (relais_msg_get (o, "group"), group, sizeof group);
            fputs ("<li>", out);
            s_html_text (out, group);
            fprintf (out, ": %.0f (was %.0f, %+.0f)</li>\n", s_num (relais_msg_get (o, "value")),
                     s_num (relais_msg_get (o, "previous")), s_num (relais_msg_get (o, "change")));
        }
        fputs ("</ul>\n", out);
    }
    fputs ("</section>\n", out);
    s_csv_close (self, csv);
    relais_msg_release (&msg);
    zframe_destroy (&frame);
}

int
cli_report (cli_t *cli, int argc, char **argv)
{
    s_report_t self;
    memset (&self, 0, sizeof self);
    self.cli = cli;
    self.suppress_below = 5;
    const char *api = NULL;
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc? argv [i + 1]: NULL;
        if (value && strcmp (argv [i], "--period") == 0)
            self.period = argv [++i];
        else
        if (value && strcmp (argv [i], "--out") == 0)
            self.dir = argv [++i];
        else
        if (value && strcmp (argv [i], "--api") == 0)
            api = argv [++i];
        else {
            fprintf (stderr, "relais report: unknown flag or missing value '%s' (see relais help report)\n", argv [i]);
            return CLI_USAGE;
        }
    }
    if (!self.period || !self.dir) {
        fprintf (stderr, "relais report: --period and --out are required\n");
        return CLI_USAGE;
    }
    if (mkdir (self.dir, 0755) != 0 && errno != EEXIST) {
        fprintf (stderr, "relais report: cannot create %s: %s\n", self.dir, strerror (errno));
        return CLI_FAILED;
    }
    self.dealer = cli_sock_new (ZMQ_DEALER, cli_analytics_endpoint (cli, api), 0);
    if (!self.dealer)
        return CLI_FAILED;
    //  A first query checks the period and that analytics answers
    s_table_t *probe = (s_table_t *) calloc (1, sizeof *probe);
    if (!probe || s_query (&self, "reports", NULL, "total", probe)) {
        free (probe);
        zsock_destroy (&self.dealer);
        return CLI_FAILED;
    }
    char path [1024];
    snprintf (path, sizeof path, "%s/index.html", self.dir);
    self.html = fopen (path, "w");
    if (!self.html) {
        fprintf (stderr, "relais report: cannot write %s: %s\n", path, strerror (errno));
        free (probe);
        zsock_destroy (&self.dealer);
        return CLI_FAILED;
    }
    FILE *out = self.html;
    fputs ("<!DOCTYPE html>\n<html lang=\"fr\">\n<head>\n<meta charset=\"utf-8\">\n<title>Relais: ", out);
    s_html_text (out, self.period);
    fputs ("</title>\n<style>\n"
           "body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }\n"
           "section { margin-bottom: 2em; }\n"
           ".chart { display: inline-block; vertical-align: top; margin-right: 2em; }\n"
           "table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 4px 8px; }\n"
           ".csv, .note { font-size: 0.85em; color: #666; }\n"
           "</style>\n</head>\n<body>\n<h1>Relais: street situations in Paris, ", out);
    s_html_text (out, self.period);
    fprintf (out, "</h1>\n<p>From %s to %s (UTC days, by the day the situation was observed). "
             "Counts below %d are suppressed (&lt;%d) to protect the people concerned.</p>\n",
             probe->from, probe->to, self.suppress_below, self.suppress_below);
    free (probe);
    s_trends (&self);
    s_chart_days (&self);
    s_chart_grid (&self);
    s_chart_publics (&self);
    s_chart_delays (&self);
    s_chart_capacity (&self);
    fputs ("</body>\n</html>\n", out);
    if (fclose (out) != 0)
        self.failures++;
    zsock_destroy (&self.dealer);
    if (self.failures) {
        fprintf (stderr, "relais report: %d part(s) missing\n", self.failures);
        return CLI_FAILED;
    }
    printf ("%s/index.html\n", self.dir);
    return CLI_OK;
}
