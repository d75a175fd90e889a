
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_MODULE_H_INCLUDED_
#define _NGX_HTTP_MPNS_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns.h"
#include "ngx_http_mpns_message.h"
#include "ngx_http_mpns_service.h"
#include "ngx_http_mpns_ssl.h"
#include "ngx_http_mpns_peer.h"
#include "ngx_http_mpns_json.h"
#include "ngx_http_mpns_registry.h"
#include "ngx_http_mpns_hold.h"
#include "ngx_http_mpns_outbox.h"
#include "ngx_http_mpns_fanout.h"
#include "ngx_http_mpns_state.h"
#include "ngx_http_mpns_status.h"


#define NGX_HTTP_MPNS_VERSION           "1.0.0"

/* ngx_cpymem() for an empty string whose data may be NULL */
#define ngx_http_mpns_cpymem(dst, src, n)                                    \
    ((n) ? ngx_cpymem(dst, src, n) : (u_char *) (dst))

/* where ngx_http_mpns_request_parse() text comes from */
#define NGX_HTTP_MPNS_QUERY_STRING      0
#define NGX_HTTP_MPNS_FORM_BODY         1
#define NGX_HTTP_MPNS_JSON_BODY         2


/* mpns_register_tile */
#define NGX_HTTP_MPNS_REGISTER_OFF      0
#define NGX_HTTP_MPNS_REGISTER_CLEAR    1
#define NGX_HTTP_MPNS_REGISTER_REPLAY   2


/* mpns_allowed_ports: "low" to "high" */
typedef struct {
    in_port_t                      low;
    in_port_t                      high;
} ngx_http_mpns_port_range_t;


struct ngx_http_mpns_main_conf_s {
    ngx_uint_t                     keepalive;
    ngx_msec_t                     keepalive_timeout;
    ngx_uint_t                     worker_concurrency;
    ngx_array_t                    registries;  /* ngx_shm_zone_t * */
    ngx_array_t                    outboxes;    /* ngx_shm_zone_t * */
    ngx_http_mpns_journal_conf_t   journal;

    /* the defaults of mpns_allowed_addresses and mpns_allowed_ports */
    ngx_http_mpns_addresses_t      addresses;
    ngx_array_t                    ports;       /* port ranges */

    /* per worker, set in init_process */
    ngx_http_mpns_engine_t        *engine;

    ngx_http_mpns_status_t        *status;   /* mpns_status, mpns_health */
};


typedef struct {
    ngx_uint_t                     index;
    ngx_http_complex_value_t       value;
} ngx_http_mpns_conf_field_t;


/* the host a worker last found in mpns_allowed_hosts, per location */
#define NGX_HTTP_MPNS_MAX_HOST          255

typedef struct {
    size_t                         len;
    u_char                         host[NGX_HTTP_MPNS_MAX_HOST];
} ngx_http_mpns_allowed_t;


struct ngx_http_mpns_loc_conf_s {
    ngx_http_mpns_service_t       *service;
    ngx_uint_t                     send;      /* mpns_send given */
    ngx_uint_t                     type;      /* its type, 0: from request */
    ngx_http_complex_value_t      *channel;
    ngx_array_t                   *fields;    /* ngx_http_mpns_conf_field_t */
    ngx_array_t                   *allowed_hosts;  /* ngx_regex_elt_t */
    ngx_http_mpns_allowed_t       *allowed;
    ngx_http_mpns_addresses_t     *allowed_addresses;
    ngx_array_t                   *allowed_ports;  /* port ranges */
    size_t                         max_payload_size;
    size_t                         max_body_size;
    ngx_msec_t                     connect_timeout;
    ngx_msec_t                     send_timeout;
    ngx_msec_t                     read_timeout;
    ngx_msec_t                     response_timeout;
    ngx_uint_t                     retries;
    ngx_msec_t                     retry_timeout;
    ngx_msec_t                     retry_delay;
    ngx_http_mpns_hold_conf_t      hold;
    ngx_http_mpns_outbox_conf_t    outbox;
    ngx_http_mpns_ssl_conf_t       ssl;
    ngx_http_mpns_proxy_t         *proxy;

    ngx_shm_zone_t                *registry;  /* mpns_registry */
    ngx_shm_zone_t                *broadcast; /* mpns_broadcast */
    ngx_uint_t                     concurrency;
    ngx_uint_t                     rate;      /* per second, 0: any */
    ngx_flag_t                     remove_expired;
    ngx_uint_t                     report_failures;

    ngx_shm_zone_t                *tiles;     /* mpns_counter, mpns_last_tile */
    ngx_flag_t                     counter;
    ngx_uint_t                     register_tile;
    ngx_str_t                      pin;       /* mpns_pin_request */

    ngx_http_mpns_status_slot_t   *status;    /* sending locations */
};


/* who a notification goes to, besides "channel" */
typedef struct {
    ngx_http_mpns_filter_t         filter;    /* mpns_broadcast */
    ngx_http_mpns_json_t           json;      /* the body, for "channels" */
    ngx_uint_t                     channels;  /* its token, 0: none */
    ngx_str_t                      send_at;   /* RFC 3339 */
    ngx_str_t                      delay;     /* seconds */
    ngx_str_t                      async;     /* "true" or "false" */
    ngx_str_t                      every;     /* seconds, or "1h" */
    ngx_str_t                      times;
    ngx_str_t                      until;     /* RFC 3339 */
    unsigned                       broadcast:1;
} ngx_http_mpns_targets_t;


typedef struct ngx_http_mpns_batch_s  ngx_http_mpns_batch_t;


/* recipients by result: failed = sent - delivered - expired */
typedef struct {
    ngx_uint_t                     sent;
    ngx_uint_t                     delivered;
    ngx_uint_t                     expired;
    ngx_uint_t                     failed;
} ngx_http_mpns_counts_t;


typedef struct {
    ngx_http_mpns_fanout_t         fanout;
    ngx_str_t                      channel;
    ngx_str_t                      message_id;    /* as sent */
    ngx_http_mpns_response_t       response;      /* as answered */
    ngx_uint_t                     outcome;
    ngx_uint_t                     attempts;
    ngx_msec_t                     elapsed;
    const char                    *error;         /* a caller's mistake */
    ngx_http_mpns_error_t         *mistake;       /* found while sending */

    /* a background send */
    ngx_http_mpns_store_op_t       op;
    ngx_msec_t                     due_in;
    u_char                         id[NGX_HTTP_MPNS_ID_LEN];

    time_t                         retry_after;   /* 0: the outcome's */
    ngx_http_mpns_batch_t         *batch;         /* several recipients */
    ngx_http_mpns_counts_t         counts;

    ngx_uint_t                     type;

    /* mpns_pin_request: the raw notification after the tile */
    ngx_uint_t                     pin_outcome;
    ngx_uint_t                     pin_status;

    unsigned                       done:1;
    unsigned                       pin_sent:1;
} ngx_http_mpns_ctx_t;


ngx_int_t ngx_http_mpns_request_spec(ngx_http_request_t *r,
    ngx_http_mpns_loc_conf_t *mlcf, ngx_http_mpns_spec_t *spec,
    ngx_http_mpns_targets_t *targets, ngx_http_mpns_error_t *err);
ngx_int_t ngx_http_mpns_request_parse(ngx_pool_t *pool,
    ngx_http_mpns_service_t *service, ngx_str_t *text, ngx_uint_t format,
    ngx_http_mpns_spec_t *spec, ngx_http_mpns_targets_t *targets,
    ngx_http_mpns_error_t *err);
ngx_int_t ngx_http_mpns_request_channel(ngx_http_request_t *r,
    ngx_http_mpns_loc_conf_t *mlcf, ngx_str_t *channel, ngx_pool_t *pool,
    ngx_http_mpns_job_t *job, ngx_http_mpns_target_t *target,
    ngx_http_mpns_error_t *err);
ngx_int_t ngx_http_mpns_channel_check(ngx_log_t *log,
    ngx_http_core_loc_conf_t *clcf, ngx_http_mpns_loc_conf_t *mlcf,
    ngx_str_t *channel, ngx_pool_t *pool, ngx_http_mpns_job_t *job,
    ngx_http_mpns_target_t *target, ngx_http_mpns_error_t *err);
ngx_int_t ngx_http_mpns_request_body(ngx_http_request_t *r, size_t max,
    ngx_str_t *body);
ngx_int_t ngx_http_mpns_request_is_type(ngx_table_elt_t *h, char *type,
    size_t len);
ngx_int_t ngx_http_mpns_request_unescape(ngx_pool_t *pool, ngx_str_t *text);

ngx_int_t ngx_http_mpns_send_handler(ngx_http_request_t *r);

ngx_int_t ngx_http_mpns_send_error(ngx_http_request_t *r,
    ngx_http_mpns_error_t *err);
ngx_int_t ngx_http_mpns_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *p, size_t len);
ngx_int_t ngx_http_mpns_add_header(ngx_http_request_t *r, char *name,
    ngx_str_t *value);

ngx_int_t ngx_http_mpns_tile_messages(ngx_http_request_t *r,
    ngx_http_mpns_message_t *msg);
ngx_int_t ngx_http_mpns_send_start(ngx_http_request_t *r,
    ngx_http_mpns_message_t *msg, ngx_http_mpns_targets_t *targets,
    ngx_http_mpns_error_t *err);
ngx_int_t ngx_http_mpns_copy(ngx_pool_t *pool, ngx_str_t *dst,
    ngx_str_t *src);
u_char *ngx_http_mpns_uint(u_char *p, ngx_uint_t n);

ngx_int_t ngx_http_mpns_add_variables(ngx_conf_t *cf);

ngx_int_t ngx_http_mpns_zone_param(ngx_conf_t *cf, ngx_str_t *value,
    ngx_str_t *name, ssize_t *size);


extern ngx_module_t  ngx_http_mpns_module;


#endif /* _NGX_HTTP_MPNS_MODULE_H_INCLUDED_ */
