
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_OUTBOX_H_INCLUDED_
#define _NGX_HTTP_MPNS_OUTBOX_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns.h"
#include "ngx_http_mpns_message.h"
#include "ngx_http_mpns_store.h"
#include "ngx_http_mpns_registry.h"


#define NGX_HTTP_MPNS_MODE_WAIT          0
#define NGX_HTTP_MPNS_MODE_BACKGROUND    1

/* 16 hex digits */
#define NGX_HTTP_MPNS_ID_LEN             16


/* mpns_result_callback: where final results are POSTed */
typedef struct {
    ngx_addr_t                    *addrs;
    ngx_uint_t                     naddrs;
    ngx_str_t                      host;      /* Host header, "host:port" */
    ngx_str_t                      uri;
    in_port_t                      port;
} ngx_http_mpns_callback_t;


/* a location's background sending */
struct ngx_http_mpns_outbox_conf_s {
    ngx_uint_t                     mode;
    ngx_shm_zone_t                *zone;     /* mpns_outbox */
    ngx_flag_t                     async;
    ngx_http_mpns_callback_t      *callback;
    ngx_msec_t                     backoff;
    ngx_msec_t                     device_inactive;
    ngx_msec_t                     throttled;
    ngx_msec_t                     max_age;
    ngx_msec_t                     keep;
    ngx_msec_t                     min_interval;
};


/* a recurring send: "every" ms, "times" (0: any) or "until" (0: none) */
typedef struct {
    ngx_msec_t                     every;
    ngx_msec_t                     until;
    ngx_uint_t                     times;
} ngx_http_mpns_recur_t;


char *ngx_http_mpns_outbox_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_mpns_outbox(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_mpns_result_callback(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_mpns_backoff(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

void ngx_http_mpns_outbox_create_conf(ngx_http_mpns_outbox_conf_t *oc);
char *ngx_http_mpns_outbox_merge_conf(ngx_conf_t *cf, void *mlcf,
    ngx_http_mpns_outbox_conf_t *conf, ngx_http_mpns_outbox_conf_t *prev);

/*
 * A notification to send later, at "due" (milliseconds since the epoch),
 * to "channel" or, with a "filter", to the registry, and again as "recur"
 * says (NULL: once): NGX_OK with its id (NGX_HTTP_MPNS_ID_LEN bytes),
 * NGX_BUSY when the outbox is full, or NGX_AGAIN and the same through
 * "op" later (ngx_http_mpns_store.h).
 */
ngx_int_t ngx_http_mpns_outbox_add(ngx_shm_zone_t *zone,
    ngx_http_mpns_message_t *msg, ngx_str_t *channel,
    ngx_http_mpns_filter_t *filter, ngx_http_mpns_recur_t *recur,
    ngx_msec_t due, u_char *id, ngx_http_mpns_store_op_t *op);

/* a broadcast's counts, in an entry */
#define NGX_HTTP_MPNS_OB_SENT           0
#define NGX_HTTP_MPNS_OB_DELIVERED      1
#define NGX_HTTP_MPNS_OB_EXPIRED        2
#define NGX_HTTP_MPNS_OB_FAILED         3
#define NGX_HTTP_MPNS_OB_DEFERRED       4
#define NGX_HTTP_MPNS_OB_COUNTS         5

/*
 * The channels a background broadcast removed from the registry, as
 * expired: all counted, listed (one per line) while the list fits.
 */
#define NGX_HTTP_MPNS_REMOVED_LIST      4096

typedef struct {
    ngx_str_t                      list;
    ngx_uint_t                     count;
    ngx_uint_t                     truncated;
} ngx_http_mpns_removed_t;

/* a broadcast's progress */
#define NGX_HTTP_MPNS_OB_GOING          0
#define NGX_HTTP_MPNS_OB_DONE           1
#define NGX_HTTP_MPNS_OB_BACK           2


typedef struct ngx_http_mpns_outbox_s       ngx_http_mpns_outbox_t;
typedef struct ngx_http_mpns_outbox_node_s  ngx_http_mpns_outbox_node_t;


/* an entry as the outbox shows it: strings point into the store */
typedef struct {
    ngx_http_mpns_outbox_node_t   *node;
    uint64_t                       id;
    ngx_http_mpns_message_t        msg;
    ngx_str_t                      channel;   /* empty: a broadcast */
    ngx_http_mpns_filter_t         filter;
    uint32_t                       cursor_hash;
    ngx_str_t                      cursor;
    uint32_t                       counts[NGX_HTTP_MPNS_OB_COUNTS];
    ngx_http_mpns_removed_t        removed;
    ngx_uint_t                     attempts;
    ngx_uint_t                     callbacks;

    unsigned                       broadcast:1;
    unsigned                       report:1;  /* a result to POST */
} ngx_http_mpns_outbox_entry_t;


/* called with an entry due; NGX_OK takes it, NGX_DECLINED leaves it */
typedef ngx_int_t (*ngx_http_mpns_outbox_claim_pt)(
    ngx_http_mpns_outbox_entry_t *e, void *data);


/*
 * The outbox's operations; each may answer NGX_AGAIN and complete through
 * "op" later (ngx_http_mpns_store.h).  ngx_http_mpns_outbox.c has the
 * details of each.
 */
ngx_int_t ngx_http_mpns_outbox_claim(ngx_http_mpns_outbox_t *ob,
    ngx_uint_t max, ngx_http_mpns_outbox_claim_pt handler, void *data,
    ngx_uint_t *claimed, ngx_http_mpns_store_op_t *op);
ngx_int_t ngx_http_mpns_outbox_sent(ngx_http_mpns_outbox_t *ob, uint64_t id,
    ngx_uint_t outcome, ngx_uint_t status, ngx_msec_t delay,
    ngx_http_mpns_store_op_t *op);
ngx_int_t ngx_http_mpns_outbox_reported(ngx_http_mpns_outbox_t *ob,
    uint64_t id, ngx_uint_t reported, ngx_msec_t delay,
    ngx_http_mpns_store_op_t *op);
ngx_int_t ngx_http_mpns_outbox_progress(ngx_http_mpns_outbox_t *ob,
    uint64_t id, ngx_http_mpns_cursor_t *cursor, uint32_t *counts,
    ngx_http_mpns_removed_t *removed, ngx_uint_t done,
    ngx_http_mpns_store_op_t *op);
ngx_int_t ngx_http_mpns_outbox_get(ngx_http_mpns_outbox_t *ob, ngx_str_t *id,
    ngx_pool_t *pool, ngx_str_t *json, ngx_http_mpns_store_op_t *op);
ngx_int_t ngx_http_mpns_outbox_cancel(ngx_http_mpns_outbox_t *ob,
    ngx_str_t *id, ngx_pool_t *pool, ngx_str_t *json,
    ngx_http_mpns_store_op_t *op);
ngx_int_t ngx_http_mpns_outbox_list(ngx_http_mpns_outbox_t *ob,
    ngx_pool_t *pool, ngx_str_t *json);

size_t ngx_http_mpns_outbox_result(ngx_http_mpns_outbox_entry_t *e,
    u_char *buf);
ngx_int_t ngx_http_mpns_outbox_parse_id(ngx_str_t *s, uint64_t *id);
void ngx_http_mpns_outbox_watch(ngx_http_mpns_outbox_t *ob, ngx_event_t *ev);
ngx_http_mpns_loc_conf_t *ngx_http_mpns_outbox_location(
    ngx_http_mpns_outbox_t *ob, ngx_http_core_loc_conf_t **clcf);

/* the runner: drains the outbox, answers GET <location>/<id> */
ngx_int_t ngx_http_mpns_background_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_mpns_background_status(ngx_http_request_t *r,
    ngx_str_t *id);
ngx_int_t ngx_http_mpns_background_cancel(ngx_http_request_t *r,
    ngx_str_t *id);
ngx_int_t ngx_http_mpns_background_list(ngx_http_request_t *r);

ngx_int_t ngx_http_mpns_outbox_init_process(ngx_cycle_t *cycle);
void ngx_http_mpns_outbox_exit_process(ngx_cycle_t *cycle);

/* milliseconds since the epoch, as stored */
ngx_msec_t ngx_http_mpns_outbox_now(void);


/* for the status page: what an outbox holds */
typedef struct {
    ngx_uint_t                     entries;
    ngx_uint_t                     full;
    ngx_str_t                      state;     /* the state file, or empty */

    /* with "walk": every entry is looked at, under the zone lock */
    ngx_uint_t                     pending;
    ngx_uint_t                     due;       /* pending, their time come */
    ngx_uint_t                     sending;
    ngx_uint_t                     done;
    ngx_uint_t                     expired;
    ngx_uint_t                     callbacks_pending;
    ngx_uint_t                     callbacks_failing;
    ngx_msec_t                     oldest_pending;  /* age, 0: none */
    ngx_msec_t                     lag;       /* of the most overdue */
} ngx_http_mpns_outbox_stat_t;


void ngx_http_mpns_outbox_stat(ngx_shm_zone_t *zone,
    ngx_http_mpns_outbox_stat_t *st, ngx_uint_t walk);


#endif /* _NGX_HTTP_MPNS_OUTBOX_H_INCLUDED_ */
