
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_STATE_H_INCLUDED_
#define _NGX_HTTP_MPNS_STATE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_http_mpns_message.h"


typedef struct ngx_http_mpns_state_s  ngx_http_mpns_state_t;


/* kept in the owner's zone, under its mutex */
typedef struct {
    uint64_t                       version;   /* bumped by every change */
    uint64_t                       saved;     /* the one in the file */
    ngx_pid_t                      writer;    /* saving it now, 0: none */
    time_t                         writing;   /* the writer's last slice */
    ngx_uint_t                     retired;   /* a new zone owns the file */
} ngx_http_mpns_state_sh_t;


/*
 * A line of the file into the zone, in the master process: NGX_OK,
 * NGX_DECLINED (skipped, "err" says why), NGX_BUSY (the zone is full: the
 * rest is not read) or NGX_ERROR.
 */
typedef ngx_int_t (*ngx_http_mpns_state_load_pt)(ngx_http_mpns_state_t *st,
    ngx_pool_t *pool, ngx_str_t *line, ngx_http_mpns_error_t *err);

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
    ngx_http_mpns_state_render_pt  render;
    size_t                         cursor_size;
    size_t                         buffer_size;  /* the longest line fits */
} ngx_http_mpns_state_format_t;


struct ngx_http_mpns_state_s {
    ngx_str_t                      path;      /* null-terminated, or empty */
    ngx_http_mpns_state_format_t  *format;
    void                          *data;      /* the owner's */
    ngx_shm_zone_t                *shm_zone;
    ngx_slab_pool_t               *shpool;
    ngx_http_mpns_state_sh_t      *sh;

    /* per worker, set in init_process */
    u_char                        *temp;      /* "<path>.<pid>.tmp" */
    ngx_event_t                    event;
    ngx_buf_t                     *buf;
    void                          *cursor;

    /* a save under way, a slice per turn of the event loop */
    ngx_fd_t                       fd;
    uint64_t                       version;
    ngx_uint_t                     slices;
    unsigned                       saving:1;

    /* set by "load": a line was in an older format, the file is redone */
    unsigned                       outdated:1;
};


/*
 * "state=" of a zone directive: "path" relative to the prefix, in a
 * directory that must exist
 */
char *ngx_http_mpns_state_path(ngx_conf_t *cf, ngx_http_mpns_state_t *st,
    ngx_str_t *path);

/* from init_zone of a new zone, with st->shpool and st->sh set */
ngx_int_t ngx_http_mpns_state_load(ngx_http_mpns_state_t *st,
    ngx_log_t *log);

/* per worker: arm saving; the last save when the worker exits */
ngx_int_t ngx_http_mpns_state_init_process(ngx_http_mpns_state_t *st,
    ngx_cycle_t *cycle);
void ngx_http_mpns_state_exit_process(ngx_http_mpns_state_t *st,
    ngx_cycle_t *cycle);

/* after sh->version was bumped: saved within a second */
void ngx_http_mpns_state_changed(ngx_http_mpns_state_t *st);


#endif /* _NGX_HTTP_MPNS_STATE_H_INCLUDED_ */
