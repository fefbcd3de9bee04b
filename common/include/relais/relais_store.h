/*  =========================================================================
    relais_store - one LMDB environment per service: state, event log,
    checkpoints

    @header
    Wraps one LMDB environment (one folder) with named databases. Every
    write goes through relais_store_write (), which runs a callback inside
    one write transaction; when it returns, the write is durable: its
    operations are one record in the store's write-ahead log (<dir>/wal),
    fdatasync'd - one flush per write - and LMDB gets them at the next
    checkpoint, committed with its default durability (data fdatasync,
    then the meta page; never NOSYNC, never WRITEMAP). A restart applies
    the records that follow the last checkpoint. Reads on the writer's
    thread see every durable write; other processes (dumps, backups) see
    the last checkpoint. On MDB_MAP_FULL the transaction is aborted, the map doubled (up to the
    configured cap) and the callback run again, so callbacks must be
    re-runnable: they may only change memory through the txn hooks below.
    The store also holds the service's event log ("log": key = sequence,
    big-endian, contiguous from 1) and the subscriber checkpoints
    ("ckpt": key = source name, value = last applied sequence).
    @discuss
    Only this file includes lmdb.h. Databases are addressed by the index of
    their name in the list given to relais_store_new (). Stale reader slots
    left by a killed process are cleared at open and by relais_store_tick ().
    Names "meta", "log" and "ckpt" are the store's own: a service listing
    them is a bug (abort). A failed put/del (other than MAP_FULL, which
    retries) fails the whole write even if the callback ignores it.
    A map grown before a restart keeps its size (LMDB records it in the
    file); map_size only raises it. Growth takes a lock that excludes
    relais_store_read, so reads on other threads never see the map move;
    calling relais_store_write from inside a read callback, or
    relais_store_read from inside a write callback, is a bug (abort).
    Writes come from one thread; reads on another thread see the last
    checkpoint. One process owns a store (a lock on its WAL); dump tools
    open it with relais_store_open_reader.
    =========================================================================
*/
#ifndef RELAIS_STORE_H_INCLUDED
#define RELAIS_STORE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "relais_err.h"

typedef struct relais_store_t relais_store_t;
typedef struct relais_txn_t relais_txn_t;

#define RELAIS_STORE_SCHEMA_VERSION 1
#define RELAIS_STORE_MAX_DBS 16

typedef struct {
    size_t map_size;            //  initial map size in bytes (0: 64 MiB)
    size_t map_max;             //  cap for growth (0: 64 GiB)
    const char *const *dbs;     //  NULL-terminated names of the service's databases
    size_t wal_size;            //  bytes of the write-ahead log file (0: 4 MiB; 64 KiB to 256 MiB)
} relais_store_opts_t;

//  A write callback runs inside one write transaction; return 0 to commit,
//  any negative code to abort (the code is returned by relais_store_write).
typedef int (relais_write_fn) (relais_txn_t *txn, void *arg);
typedef int (relais_read_fn) (relais_txn_t *txn, void *arg);

//  Hooks around write transactions, for objects (the publisher) that keep
//  in-memory state in step with what was committed. begin runs before each
//  attempt, abort after a failed or retried attempt, commit after a durable
//  commit.
typedef void (relais_txn_hook_fn) (void *arg);

//  Open (creating the folder and files as needed) the environment in dir,
//  as its one owner: applies what the write-ahead log holds since the last
//  checkpoint. Returns NULL and logs why on failure (unwritable folder,
//  schema version from the future, LMDB error, another owner).
relais_store_t *
    relais_store_new (const char *dir, const relais_store_opts_t *opts);

//  Open the store for reading beside its owner (dump tools), writes
//  refused with -EROFS. When the service that owns dir runs: a view of its
//  last checkpoint (relais_store_checkpoint: at most a heartbeat or so
//  behind what it acked). When none runs: what its write-ahead log holds
//  is applied first, as a restart would, then the lock is let go at once
//  (an owner starting meanwhile waits up to 3 s for it).
relais_store_t *
    relais_store_open_reader (const char *dir, const relais_store_opts_t *opts);

//  Close the environment. NULL-safe; nulls *self_p.
void
    relais_store_destroy (relais_store_t **self_p);

//  Run fn in a write transaction and commit durably. Grows the map and
//  retries on MDB_MAP_FULL. Returns 0; fn's own negative code; RELAIS_EFULL
//  when the map is at its cap or the disk is full (ENOSPC); RELAIS_EFATAL
//  when LMDB can no longer be trusted (EIO on sync, MDB_PANIC): the caller
//  must stop acking and exit.
int
    relais_store_write (relais_store_t *self, relais_write_fn *fn, void *arg);

//  Run fn in a read-only transaction. Returns fn's code or an LMDB error.
int
    relais_store_read (relais_store_t *self, relais_read_fn *fn, void *arg);

//  Register hooks called around every write transaction. Up to 4.
void
    relais_store_hook (relais_store_t *self, relais_txn_hook_fn *begin,
                       relais_txn_hook_fn *commit, relais_txn_hook_fn *abort,
                       void *arg);

//  Index of a database by name, or -1.
int
    relais_store_dbi (relais_store_t *self, const char *name);

//  Periodic maintenance: relais_store_checkpoint, then clear stale reader
//  slots (mdb_reader_check).
//  Returns the number of slots cleared.
int
    relais_store_tick (relais_store_t *self);

//  Commit to LMDB what the write-ahead log holds since the last
//  checkpoint (no-op when nothing is pending, inside a transaction, or on
//  another thread than the writer's). relais_pub's heartbeat, relais_sub's
//  tick and relais_store_tick call it, so that a dump beside the owner
//  (relais_store_open_reader) is at most about a second behind, the log
//  starts again empty when a service idles, and the parent transaction's
//  pages leave memory. Returns 0, RELAIS_EFULL (nothing lost: the log
//  still holds it all) or RELAIS_EFATAL (the next write says so too).
int
    relais_store_checkpoint (relais_store_t *self);

typedef struct {
    uint64_t wal_records;               //  records flushed since open
    size_t wal_pending_bytes;           //  of them, bytes since the last checkpoint
    size_t wal_size;                    //  bytes of the log file
    uint64_t checkpoints;               //  LMDB commits since open
} relais_store_stats_t;

void
    relais_store_stats (relais_store_t *self, relais_store_stats_t *stats);

//  Current map size in bytes, and the number of growths since open.
size_t
    relais_store_map_size (relais_store_t *self);
int
    relais_store_resizes (relais_store_t *self);

//  Key/value access inside a transaction. db is an index from
//  relais_store_dbi. get returns RELAIS_ENOTFOUND when absent; the value
//  points into the map and is valid until the txn ends.
int relais_txn_put (relais_txn_t *txn, int db, const void *key, size_t klen,
                    const void *val, size_t vlen);
int relais_txn_get (relais_txn_t *txn, int db, const void *key, size_t klen,
                    const void **val, size_t *vlen);
int relais_txn_del (relais_txn_t *txn, int db, const void *key, size_t klen);

//  Iterate keys >= from (NULL: first) in order; fn returns 0 to go on, 1 to
//  stop, negative to stop with an error. Returns 0 or that error.
typedef int (relais_scan_fn) (const void *key, size_t klen, const void *val,
                              size_t vlen, void *arg);
int relais_txn_scan (relais_txn_t *txn, int db, const void *from, size_t flen,
                     relais_scan_fn *fn, void *arg);

//  The store the transaction belongs to.
relais_store_t *
    relais_txn_store (relais_txn_t *txn);

//  --- meta: small named uint64 values ("next_id", ...) -------------------
int relais_meta_get (relais_txn_t *txn, const char *name, uint64_t *value);   //  0 when absent
int relais_meta_set (relais_txn_t *txn, const char *name, uint64_t value);

//  --- the event log ---------------------------------------------------------
//  Append bytes as entry seq, which must be last + 1 (asserted: a caller bug).
int relais_log_append (relais_txn_t *txn, uint64_t seq, const void *bytes, size_t size);
//  Read entry seq; RELAIS_ENOTFOUND when absent.
int relais_log_get (relais_txn_t *txn, uint64_t seq, const void **bytes, size_t *size);
//  Walk entries from seq on, in order, with one cursor (a replay reads a
//  thousand entries in one pass, not a thousand lookups). fn gets the seq,
//  the bytes (valid until the txn ends) and arg; returns 0 to go on, 1 to
//  stop, negative to stop with that error. Returns 0 or that error.
typedef int (relais_log_fn) (uint64_t seq, const void *bytes, size_t size, void *arg);
int relais_log_scan (relais_txn_t *txn, uint64_t from, relais_log_fn *fn, void *arg);
//  First and last sequence in the log (0, 0 when empty).
int relais_log_bounds (relais_txn_t *txn, uint64_t *first, uint64_t *last);

//  --- subscriber checkpoints -------------------------------------------------
int relais_ckpt_get (relais_txn_t *txn, const char *source, uint64_t *seq);   //  0 when absent
int relais_ckpt_set (relais_txn_t *txn, const char *source, uint64_t seq);

//  --- backup and verification (operator tools; another process may run) ---
typedef struct {
    uint64_t schema_version;
    uint64_t log_first, log_last;       //  0, 0 when the log is empty
    uint64_t log_entries;               //  entries actually in the log
    size_t bytes;                       //  size of data.mdb
    uint64_t wal_records;               //  acked writes in the WAL, after the checkpoint above
} relais_store_info_t;

//  Hot backup of the environment in dir (which a running service may own:
//  LMDB lets a second process read) into dest, a folder that must not
//  exist or be empty: a compacted copy of the last committed transaction
//  (mdb_env_copy2 with MDB_CP_COMPACT), fsync'd, then verified. Fills info
//  about the copy when not NULL. Returns 0, -EEXIST (dest not empty), or
//  another negative code after logging why.
int
    relais_store_backup (const char *dir, const char *dest, relais_store_info_t *info);

//  Open the environment in dir read-only and check it (as of its last
//  checkpoint; wal_records counts the writes acked since, which the owner
//  holds in its write-ahead log): schema version this
//  program reads, log bounds recorded in meta equal to the log's real first
//  and last keys, and the log contiguous (entries == last - first + 1).
//  Fills info. Returns 0, RELAIS_EMALFORMED when an invariant is broken
//  (logged), or another negative code.
int
    relais_store_verify (const char *dir, relais_store_info_t *info);

//  Rewrite the store in place so that deleted and overwritten values are
//  gone from data.mdb (LMDB leaves them in free pages and page gaps): every
//  key of every database the store was opened with is copied in order into
//  a fresh environment (<dir>/compact.tmp), committed durably, and the new
//  data.mdb renamed over the old one; the environment is then reopened and
//  the store goes on. Call it on the owner's thread between transactions,
//  as the only process using the store (another reader would keep a stale
//  lock file). Fills before/after with data.mdb's size when not NULL.
//  Returns 0; a negative code with the old store still in use (the copy
//  failed: logged); or RELAIS_EFATAL when the store could not be reopened
//  (the caller must exit).
int
    relais_store_compact (relais_store_t *self, size_t *before, size_t *after);

//  Helpers for big-endian u64 keys (they sort in numeric order).
void     relais_u64_to_key (uint64_t value, uint8_t key [8]);
uint64_t relais_key_to_u64 (const void *key);

#endif
