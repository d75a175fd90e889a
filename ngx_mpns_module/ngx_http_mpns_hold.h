
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_HOLD_H_INCLUDED_
#define _NGX_HTTP_MPNS_HOLD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns.h"
#include "ngx_http_mpns_store.h"


/* mpns_hold of a location: the zone and how long each answer holds */
typedef struct {
    ngx_shm_zone_t                *zone;
    ngx_msec_t                     device_inactive;   /* after a 412 */
    ngx_msec_t                     throttled;         /* after a 406 */
} ngx_http_mpns_hold_conf_t;


char *ngx_http_mpns_hold_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_mpns_hold(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_mpns_hold_create_conf(ngx_http_mpns_hold_conf_t *hc);
char *ngx_http_mpns_hold_merge_conf(ngx_conf_t *cf,
    ngx_http_mpns_hold_conf_t *conf, ngx_http_mpns_hold_conf_t *prev);

/*
 * The holds' operations; each may answer NGX_AGAIN and complete through
 * "op" later (ngx_http_mpns_store.h).
 *
 * NGX_OK with what the service answered and the seconds left when the
 * channel is held, NGX_DECLINED when it is not; "outcome", "status" and
 * "left" stay the caller's until "op" completes.
 */
ngx_int_t ngx_http_mpns_hold_check(ngx_http_mpns_hold_conf_t *hc,
    ngx_str_t *channel, ngx_uint_t *outcome, ngx_uint_t *status,
    time_t *left, ngx_http_mpns_store_op_t *op);

/* remembers a 412 or 406 answer; other outcomes are ignored */
ngx_int_t ngx_http_mpns_hold_set(ngx_http_mpns_hold_conf_t *hc,
    ngx_str_t *channel, ngx_uint_t outcome, ngx_uint_t status,
    ngx_log_t *log, ngx_http_mpns_store_op_t *op);

/* the window of an outcome, in seconds, 0: not held */
time_t ngx_http_mpns_hold_window(ngx_http_mpns_hold_conf_t *hc,
    ngx_uint_t outcome);


/*
 * for the status page: entries, and those holding now; NGX_DECLINED if
 * "zone" is not a hold zone
 */
ngx_int_t ngx_http_mpns_hold_stat(ngx_shm_zone_t *zone, ngx_uint_t *entries,
    ngx_uint_t *active);


#endif /* _NGX_HTTP_MPNS_HOLD_H_INCLUDED_ */
