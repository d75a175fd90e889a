
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_H_INCLUDED_
#define _NGX_HTTP_MPNS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>
#include <ngx_http.h>


/* the longest channel URI taken */
#define NGX_HTTP_MPNS_MAX_CHANNEL       1024


/*
 * The structures the areas pass to each other, declared once so that
 * every header can name them without including another area's header.
 * ngx_http_mpns_module.h includes all the area headers.
 */

typedef struct ngx_http_mpns_service_s       ngx_http_mpns_service_t;
typedef struct ngx_http_mpns_engine_s        ngx_http_mpns_engine_t;
typedef struct ngx_http_mpns_job_s           ngx_http_mpns_job_t;
typedef struct ngx_http_mpns_fanout_s        ngx_http_mpns_fanout_t;
typedef struct ngx_http_mpns_registry_s      ngx_http_mpns_registry_t;
typedef struct ngx_http_mpns_reader_s        ngx_http_mpns_reader_t;
typedef struct ngx_http_mpns_filter_s        ngx_http_mpns_filter_t;
typedef struct ngx_http_mpns_ssl_s           ngx_http_mpns_ssl_t;
typedef struct ngx_http_mpns_proxy_s         ngx_http_mpns_proxy_t;
typedef struct ngx_http_mpns_outbox_conf_s   ngx_http_mpns_outbox_conf_t;
typedef struct ngx_http_mpns_loc_conf_s      ngx_http_mpns_loc_conf_t;
typedef struct ngx_http_mpns_main_conf_s     ngx_http_mpns_main_conf_t;
typedef struct ngx_http_mpns_store_op_s      ngx_http_mpns_store_op_t;


#endif /* _NGX_HTTP_MPNS_H_INCLUDED_ */
