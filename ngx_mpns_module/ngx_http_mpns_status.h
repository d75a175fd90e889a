
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_STATUS_H_INCLUDED_
#define _NGX_HTTP_MPNS_STATUS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


typedef struct ngx_http_mpns_status_s        ngx_http_mpns_status_t;
typedef struct ngx_http_mpns_status_node_s   ngx_http_mpns_status_node_t;
typedef struct ngx_http_mpns_status_shctx_s  ngx_http_mpns_status_shctx_t;


/*
 * A sending location's figures: made when the configuration is read,
 * "node" found or made in the status zone when the zone is set up (NULL
 * if it was full).  Jobs carry it; NULL without a status zone.
 */
typedef struct {
    ngx_http_mpns_status_node_t   *node;
    ngx_http_mpns_status_shctx_t  *sh;
    ngx_str_t                      name;
} ngx_http_mpns_status_slot_t;


/* directives: mpns_status and mpns_health, mpns_status_zone */
char *ngx_http_mpns_status_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_mpns_status_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* the slot of the location being merged; *slot = NULL without a zone */
ngx_int_t ngx_http_mpns_status_slot(ngx_conf_t *cf,
    ngx_http_mpns_status_slot_t **slot);

/* postconfiguration: adds the zone if a status location asked for it */
ngx_int_t ngx_http_mpns_status_init(ngx_conf_t *cf);


/*
 * What the send path reports.  Each is a few atomic additions in shared
 * memory, no lock; a NULL slot (no status zone) costs a compare.
 */

/* a job of the slot's location starts, or is cancelled after it started */
void ngx_http_mpns_status_start(ngx_http_mpns_status_slot_t *slot);
void ngx_http_mpns_status_cancel(ngx_http_mpns_status_slot_t *slot,
    ngx_uint_t attempts);

/*
 * A notification's result: "type" is an NGX_HTTP_MPNS_* type, "outcome"
 * an NGX_HTTP_MPNS_* outcome; "attempts" 0 when MPNS was not asked (a
 * hold answered, or the channel was refused).
 */
void ngx_http_mpns_status_result(ngx_http_mpns_status_slot_t *slot,
    ngx_uint_t type, ngx_uint_t outcome, ngx_uint_t attempts,
    ngx_msec_t elapsed);

/* a connection to MPNS opened (reused 0), or taken from the idle cache */
void ngx_http_mpns_status_connection(ngx_http_mpns_status_slot_t *slot,
    ngx_uint_t reused);

/*
 * idle connections cached (1) or closed from the cache (-1), by a job of
 * "slot" (faster) or by none (NULL)
 */
void ngx_http_mpns_status_idle(ngx_http_mpns_status_slot_t *slot,
    ngx_int_t n);

/* a TLS handshake with MPNS completed */
void ngx_http_mpns_status_handshake(ngx_http_mpns_status_slot_t *slot,
    ngx_uint_t resumed);

/* a result callback POSTed to the application, answered 2xx (ok) or not */
void ngx_http_mpns_status_callback(ngx_http_mpns_status_slot_t *slot,
    ngx_uint_t ok);

/* a state file save of zone "name" finished: NGX_OK or a failure */
void ngx_http_mpns_status_save(ngx_str_t *name, ngx_int_t rc);

/* the dashboard page (ngx_http_mpns_dashboard.c, made from util/) */
extern u_char  ngx_http_mpns_dashboard[];
extern size_t  ngx_http_mpns_dashboard_size;


#endif /* _NGX_HTTP_MPNS_STATUS_H_INCLUDED_ */
