
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
};


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
 * to "channel" or, with a "filter", to the registry: NGX_OK with its id
 * (NGX_HTTP_MPNS_ID_LEN bytes), NGX_BUSY when the outbox is full, or
 * NGX_AGAIN and the same through "op" later (ngx_http_mpns_store.h).
 */
ngx_int_t ngx_http_mpns_outbox_add(ngx_shm_zone_t *zone,
    ngx_http_mpns_message_t *msg, ngx_str_t *channel,
    ngx_http_mpns_filter_t *filter, ngx_msec_t due, u_char *id,
    ngx_http_mpns_store_op_t *op);

/* answers GET <location>/<id> */
ngx_int_t ngx_http_mpns_outbox_status(ngx_http_request_t *r, ngx_str_t *id);

ngx_int_t ngx_http_mpns_outbox_init_process(ngx_cycle_t *cycle);
void ngx_http_mpns_outbox_exit_process(ngx_cycle_t *cycle);

/* milliseconds since the epoch, as stored */
ngx_msec_t ngx_http_mpns_outbox_now(void);


#endif /* _NGX_HTTP_MPNS_OUTBOX_H_INCLUDED_ */
