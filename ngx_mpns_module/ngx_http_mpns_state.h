
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_STATE_H_INCLUDED_
#define _NGX_HTTP_MPNS_STATE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_http_mpns.h"
#include "ngx_http_mpns_message.h"
#include "ngx_http_mpns_store.h"


/* journal records */
#define NGX_HTTP_MPNS_RECORD_SET        's'   /* a line of the state file */
#define NGX_HTTP_MPNS_RECORD_REMOVE     'd'   /* the key of an entry gone */


typedef struct ngx_http_mpns_state_s    ngx_http_mpns_state_t;
typedef struct ngx_http_mpns_journal_s  ngx_http_mpns_journal_t;


/* mpns_journal, in the main configuration */
typedef struct {
    ngx_msec_t                     sync;      /* 0: before every answer */
    ngx_msec_t                     snapshot;
    ngx_str_t                      pool_name;
    ngx_thread_pool_t             *thread_pool;
    ngx_uint_t                     used;      /* a zone has a state file */
} ngx_http_mpns_journal_conf_t;


/* kept in the owner's zone, under its mutex */
typedef struct {
    uint64_t                       version;   /* bumped by every change */
    uint64_t                       saved;     /* the one in the snapshot */
    uint64_t                       seq;       /* of the last record */
    uint64_t                       journaled; /* bytes since a snapshot */
    uint64_t                       size;      /* of the last snapshot */
    ngx_uint_t                     epoch;     /* bumped by every snapshot */
    ngx_uint_t                     files;     /* journal files made */
    ngx_pid_t                      writer;    /* saving it now, 0: none */
    time_t                         writing;   /* the writer's last slice */
    ngx_uint_t                     retired;   /* a new zone owns the file */
} ngx_http_mpns_state_sh_t;


/*
 * A line of the file into the zone, in the master process: NGX_OK,
 * NGX_DECLINED (skipped, "err" says why), NGX_BUSY (the zone is full: the
 * rest is not read) or NGX_ERROR.  A line of the journal replaces the
 * entry with the same key (st->replaying is set).
 */
typedef ngx_int_t (*ngx_http_mpns_state_load_pt)(ngx_http_mpns_state_t *st,
    ngx_pool_t *pool, ngx_str_t *line, ngx_http_mpns_error_t *err);

/* a removal of the journal: NGX_OK, also when there is no such entry */
typedef ngx_int_t (*ngx_http_mpns_state_remove_pt)(ngx_http_mpns_state_t *st,
    ngx_str_t *key);

/* everything is loaded: the owner may look at its zone once more */
typedef void (*ngx_http_mpns_state_loaded_pt)(ngx_http_mpns_state_t *st,
    ngx_log_t *log);

/*
 * The records after "cursor" (zeroed when a save starts) into b->last up
 * to b->end, one line each, moving the cursor past them: NGX_OK when the
 * last one is in, NGX_AGAIN when "b" is full, or NGX_ERROR.  It locks the
 * zone itself, for one buffer at most.
 */
typedef ngx_int_t (*ngx_http_mpns_state_render_pt)(
    ngx_http_mpns_state_t *st, void *cursor, ngx_buf_t *b);


/* what differs between the state files of the registry and the outbox */
typedef struct {
    ngx_str_t                      name;      /* "registry": in logs */
    ngx_http_mpns_state_load_pt    load;
    ngx_http_mpns_state_remove_pt  remove;
    ngx_http_mpns_state_loaded_pt  loaded;    /* may be NULL */
    ngx_http_mpns_state_render_pt  render;
    size_t                         cursor_size;
    size_t                         buffer_size;  /* the longest line fits */
} ngx_http_mpns_state_format_t;


struct ngx_http_mpns_state_s {
    ngx_str_t                      path;      /* null-terminated, or empty */
    ngx_cycle_t                   *cycle;     /* the one configured */
    ngx_http_mpns_state_format_t  *format;
    ngx_http_mpns_journal_conf_t  *conf;
    void                          *data;      /* the owner's */
    ngx_shm_zone_t                *shm_zone;
    ngx_slab_pool_t               *shpool;
    ngx_http_mpns_state_sh_t      *sh;

    /* per worker, set in init_process */
    ngx_http_mpns_journal_t       *journal;
    u_char                        *temp;      /* "<path>.<pid>.tmp" */
    ngx_event_t                    event;
    ngx_buf_t                     *buf;
    void                          *cursor;
    ngx_thread_task_t             *task;      /* a save's file operations */

    /* a save under way, a slice per turn of the event loop */
    uint64_t                       seq;       /* what it holds for sure */
    uint64_t                       version;
    ngx_uint_t                     epoch;
    ngx_uint_t                     slices;
    off_t                          written;
    unsigned                       saving:1;
    unsigned                       last:1;    /* the last slice is out */

    /* set by "load": a line was in an older format, the file is redone */
    unsigned                       outdated:1;

    /* the lines "load" is given come from the journal */
    unsigned                       replaying:1;
};


/*
 * "state=" of a zone directive: "path" relative to the prefix, in a
 * directory that must exist; its journal as "conf" says
 */
char *ngx_http_mpns_state_path(ngx_conf_t *cf, ngx_http_mpns_state_t *st,
    ngx_str_t *path, ngx_http_mpns_journal_conf_t *conf);

/* the mpns_journal directive and its defaults */
char *ngx_http_mpns_state_journal(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_mpns_state_create_conf(ngx_http_mpns_journal_conf_t *conf);
char *ngx_http_mpns_state_init_conf(ngx_conf_t *cf,
    ngx_http_mpns_journal_conf_t *conf);

/*
 * From init_zone of a new zone, with st->shpool and st->sh set: the
 * snapshot, then the journal after it.  "old" is the zone's state of the
 * previous cycle, if any: its workers stop writing.
 */
ngx_int_t ngx_http_mpns_state_load(ngx_http_mpns_state_t *st,
    ngx_http_mpns_state_t *old, ngx_log_t *log);

/* the same zone in the cycle before a reload that made it anew */
void *ngx_http_mpns_state_previous(ngx_shm_zone_t *shm_zone);

/* a zone that takes over from "old" on reload, its entries copied */
void ngx_http_mpns_state_migrate(ngx_http_mpns_state_t *st,
    ngx_http_mpns_state_t *old);

/* per worker: the journal and the snapshots; what is left at exit */
ngx_int_t ngx_http_mpns_state_init_process(ngx_http_mpns_state_t *st,
    ngx_cycle_t *cycle);
void ngx_http_mpns_state_exit_process(ngx_http_mpns_state_t *st,
    ngx_cycle_t *cycle);

/*
 * A change, with the zone locked: room for a record of "len" bytes, then
 * the end of what was put there.  NULL: nothing to record (no state file,
 * the master process, a zone retired) or no memory (the change is then
 * not acknowledged, see ngx_http_mpns_state_commit()).
 */
u_char *ngx_http_mpns_state_record(ngx_http_mpns_state_t *st,
    ngx_uint_t type, size_t len);
void ngx_http_mpns_state_recorded(ngx_http_mpns_state_t *st, u_char *last);

/*
 * After the zone is unlocked: "rc" once what this worker recorded is on
 * disk.  NGX_AGAIN: op->handler is called then, with op->rc set to "rc"
 * or NGX_ERROR; otherwise "rc" now (no journal, op is NULL or has no
 * handler, or mpns_journal syncs on a timer), or NGX_ERROR.
 */
ngx_int_t ngx_http_mpns_state_commit(ngx_http_mpns_state_t *st,
    ngx_http_mpns_store_op_t *op, ngx_int_t rc);

/* a zone retired on reload takes no more changes */
ngx_uint_t ngx_http_mpns_state_retired(ngx_http_mpns_state_t *st);


/* the workers can write the state file's directory (in init_zone) */
ngx_int_t ngx_http_mpns_state_check(ngx_http_mpns_state_t *st);

#endif /* _NGX_HTTP_MPNS_STATE_H_INCLUDED_ */
