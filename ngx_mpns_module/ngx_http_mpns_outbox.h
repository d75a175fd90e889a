
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_OUTBOX_H_INCLUDED_
#define _NGX_HTTP_MPNS_OUTBOX_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


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
typedef struct {
    ngx_uint_t                     mode;
    ngx_shm_zone_t                *zone;     /* mpns_outbox */
    ngx_flag_t                     async;
    ngx_http_mpns_callback_t      *callback;
    ngx_msec_t                     backoff;
    ngx_msec_t                     device_inactive;
    ngx_msec_t                     throttled;
    ngx_msec_t                     max_age;
    ngx_msec_t                     keep;
} ngx_http_mpns_outbox_conf_t;


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
 * a notification (an ngx_http_mpns_message_t) to send later, at "due"
 * (milliseconds since the epoch), to "channel" or, with a "filter" (an
 * ngx_http_mpns_filter_t), to the registry; NGX_OK with its id, NGX_BUSY
 * when the outbox is full
 */
ngx_int_t ngx_http_mpns_outbox_add(ngx_http_request_t *r, void *msg,
    ngx_str_t *channel, void *filter, ngx_msec_t due, u_char *id);

/* answers GET <location>/<id> */
ngx_int_t ngx_http_mpns_outbox_status(ngx_http_request_t *r, ngx_str_t *id);

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
