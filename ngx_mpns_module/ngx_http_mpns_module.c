
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"
#include "ngx_http_mpns_json.h"


#define NGX_HTTP_MPNS_DEFAULT_HOSTS     "(^|\\.)notify\\.live\\.net$"


static ngx_int_t ngx_http_mpns_send_handler(ngx_http_request_t *r);
static void ngx_http_mpns_body_handler(ngx_http_request_t *r);
static void ngx_http_mpns_send_done(ngx_http_mpns_job_t *job);
static void ngx_http_mpns_cleanup(void *data);
static ngx_int_t ngx_http_mpns_send_result(ngx_http_request_t *r,
    ngx_http_mpns_ctx_t *ctx);
static ngx_int_t ngx_http_mpns_copy(ngx_pool_t *pool, ngx_str_t *dst,
    ngx_str_t *src);

static ngx_int_t ngx_http_mpns_background(ngx_http_request_t *r,
    ngx_http_mpns_message_t *msg, ngx_http_mpns_targets_t *targets,
    ngx_http_mpns_error_t *err);
static ngx_int_t ngx_http_mpns_refuse(ngx_http_mpns_error_t *err,
    char *text, char *field);
static ngx_int_t ngx_http_mpns_parse_rfc3339(ngx_str_t *s, ngx_msec_t *ms);
static ngx_int_t ngx_http_mpns_preconfiguration(ngx_conf_t *cf);
static void *ngx_http_mpns_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_mpns_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_mpns_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_mpns_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_mpns_send(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mpns_field_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_mpns_allowed_hosts(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_mpns_add_host(ngx_conf_t *cf, ngx_array_t *hosts,
    ngx_str_t *pattern);
static char *ngx_http_mpns_broadcast(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mpns_proxy(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_mpns_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_mpns_init_process(ngx_cycle_t *cycle);
static void ngx_http_mpns_exit_process(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_http_mpns_keepalive_bounds = {
    ngx_conf_check_num_bounds, 0, 65535
};

static ngx_conf_num_bounds_t  ngx_http_mpns_concurrency_bounds = {
    ngx_conf_check_num_bounds, 1, 65535
};

static ngx_conf_num_bounds_t  ngx_http_mpns_report_bounds = {
    ngx_conf_check_num_bounds, 0, 10000
};

static ngx_conf_num_bounds_t  ngx_http_mpns_retries_bounds = {
    ngx_conf_check_num_bounds, 0, 16
};

static ngx_conf_enum_t  ngx_http_mpns_modes[] = {
    { ngx_string("wait"), NGX_HTTP_MPNS_MODE_WAIT },
    { ngx_string("background"), NGX_HTTP_MPNS_MODE_BACKGROUND },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_mpns_commands[] = {

    { ngx_string("mpns_send"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_mpns_send,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_channel"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, channel),
      NULL },

    { ngx_string("mpns_field"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_mpns_field_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_allowed_hosts"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_mpns_allowed_hosts,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_max_payload_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, max_payload_size),
      NULL },

    { ngx_string("mpns_max_body_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, max_body_size),
      NULL },

    { ngx_string("mpns_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, connect_timeout),
      NULL },

    { ngx_string("mpns_send_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, send_timeout),
      NULL },

    { ngx_string("mpns_read_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, read_timeout),
      NULL },

    { ngx_string("mpns_retries"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, retries),
      &ngx_http_mpns_retries_bounds },

    { ngx_string("mpns_retry_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, retry_timeout),
      NULL },

    { ngx_string("mpns_retry_delay"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, retry_delay),
      NULL },

    { ngx_string("mpns_outbox_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_mpns_outbox_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_outbox"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpns_outbox,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, outbox),
      NULL },

    { ngx_string("mpns_mode"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, outbox.mode),
      &ngx_http_mpns_modes },

    { ngx_string("mpns_async"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, outbox.async),
      NULL },

    { ngx_string("mpns_result_callback"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpns_result_callback,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, outbox),
      NULL },

    { ngx_string("mpns_backoff"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_mpns_backoff,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, outbox),
      NULL },

    { ngx_string("mpns_max_age"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, outbox.max_age),
      NULL },

    { ngx_string("mpns_result_keep"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, outbox.keep),
      NULL },

    { ngx_string("mpns_hold_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_mpns_hold_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_hold"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_mpns_hold,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, hold),
      NULL },

    { ngx_string("mpns_proxy"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpns_proxy,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_ssl_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, ssl.certificate),
      NULL },

    { ngx_string("mpns_ssl_certificate_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, ssl.certificate_key),
      NULL },

    { ngx_string("mpns_ssl_password_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpns_ssl_password_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, ssl),
      NULL },

    { ngx_string("mpns_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, ssl.trusted_certificate),
      NULL },

    { ngx_string("mpns_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, ssl.verify),
      NULL },

    { ngx_string("mpns_ssl_protocols"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_conf_set_bitmask_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, ssl.protocols),
      &ngx_http_mpns_ssl_protocols },

    { ngx_string("mpns_ssl_ciphers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, ssl.ciphers),
      NULL },

    { ngx_string("mpns_ssl_server_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, ssl.server_name),
      NULL },

    { ngx_string("mpns_keepalive"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_mpns_main_conf_t, keepalive),
      &ngx_http_mpns_keepalive_bounds },

    { ngx_string("mpns_keepalive_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_mpns_main_conf_t, keepalive_timeout),
      NULL },

    { ngx_string("mpns_worker_concurrency"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_mpns_main_conf_t, worker_concurrency),
      &ngx_http_mpns_concurrency_bounds },

    { ngx_string("mpns_registry_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_mpns_registry_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_registry"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpns_registry_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_broadcast"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_mpns_broadcast,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_concurrency"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, concurrency),
      &ngx_http_mpns_concurrency_bounds },

    { ngx_string("mpns_remove_expired"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, remove_expired),
      NULL },

    { ngx_string("mpns_report_failures"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, report_failures),
      &ngx_http_mpns_report_bounds },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_mpns_module_ctx = {
    ngx_http_mpns_preconfiguration,        /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_mpns_create_main_conf,        /* create main configuration */
    ngx_http_mpns_init_main_conf,          /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_mpns_create_loc_conf,         /* create location configuration */
    ngx_http_mpns_merge_loc_conf           /* merge location configuration */
};


ngx_module_t  ngx_http_mpns_module = {
    NGX_MODULE_V1,
    &ngx_http_mpns_module_ctx,             /* module context */
    ngx_http_mpns_commands,                /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_mpns_init_module,             /* init module */
    ngx_http_mpns_init_process,            /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_mpns_exit_process,            /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_mpns_allow = ngx_string("GET, POST");
static ngx_str_t  ngx_http_mpns_method_field = ngx_string("method");
static ngx_str_t  ngx_http_mpns_body_field = ngx_string("body");
static ngx_str_t  ngx_http_mpns_channel_field = ngx_string("channel");
static ngx_str_t  ngx_http_mpns_type_field = ngx_string("type");


static ngx_int_t
ngx_http_mpns_send_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_str_t                  id;
    ngx_http_mpns_ctx_t       *ctx;
    ngx_http_mpns_error_t      err;
    ngx_http_mpns_loc_conf_t  *mlcf;
    ngx_http_core_loc_conf_t  *clcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_mpns_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_mpns_module);

    err.status = 0;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_POST))) {
        err.status = NGX_HTTP_NOT_ALLOWED;
        err.text = "method not allowed";
        err.field = ngx_http_mpns_method_field;

    } else if (r->headers_in.content_length_n > (off_t) mlcf->max_body_size)
    {
        err.status = NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
        err.text = "request body too large";
        err.field = ngx_http_mpns_body_field;
    }

    if (err.status) {
        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }

        if (err.status == NGX_HTTP_NOT_ALLOWED) {
            if (ngx_http_mpns_add_header(r, "Allow", &ngx_http_mpns_allow)
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

        return ngx_http_mpns_send_error(r, &err);
    }

    /* GET <location>/<id>: a background send's state */

    if (mlcf->outbox.zone && (r->method & NGX_HTTP_GET)) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (r->uri.len > clcf->name.len) {
            id.data = r->uri.data + clcf->name.len;
            id.len = r->uri.len - clcf->name.len;

            if (id.data[0] == '/') {
                id.data++;
                id.len--;
            }

            if (id.len) {
                rc = ngx_http_discard_request_body(r);

                if (rc != NGX_OK) {
                    return rc;
                }

                return ngx_http_mpns_outbox_status(r, &id);
            }
        }
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_mpns_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_mpns_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_str_t                  *channel;
    ngx_http_cleanup_t         *cln;
    ngx_http_mpns_ctx_t        *ctx;
    ngx_http_mpns_job_t        *job;
    ngx_http_mpns_spec_t        spec;
    time_t                      left;
    ngx_uint_t                  outcome, status;
    ngx_http_mpns_error_t       err;
    ngx_http_mpns_target_t      target;
    ngx_http_mpns_message_t     msg;
    ngx_http_mpns_targets_t     targets;
    ngx_http_mpns_loc_conf_t   *mlcf;
    ngx_http_mpns_main_conf_t  *mmcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);
    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mpns_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_mpns_module);

    ngx_memzero(&targets, sizeof(ngx_http_mpns_targets_t));
    targets.broadcast = (mlcf->broadcast != NULL);

    rc = ngx_http_mpns_request_spec(r, mlcf, &spec, &targets, &err);

    if (rc == NGX_DECLINED) {
        goto mistake;
    }

    if (rc != NGX_OK) {
        goto failed;
    }

    channel = &spec.values[NGX_HTTP_MPNS_F_CHANNEL];

    if (channel->data == NULL && !targets.broadcast && !targets.channels) {
        err.status = NGX_HTTP_BAD_REQUEST;
        err.text = "missing field";
        err.field = ngx_http_mpns_channel_field;
        goto mistake;
    }

    ctx->channel = *channel;

    if (spec.values[NGX_HTTP_MPNS_F_MESSAGE_ID].data == NULL) {
        spec.random = ngx_http_mpns_engine_random(mmcf->engine);
    }

    rc = ngx_http_mpns_message_build(r->pool, &spec, mlcf->max_payload_size,
                                     &msg, &err);

    if (rc == NGX_DECLINED) {
        goto mistake;
    }

    if (rc != NGX_OK) {
        goto failed;
    }

    rc = ngx_http_mpns_background(r, &msg, &targets, &err);

    if (rc != NGX_DECLINED) {
        if (rc == NGX_OK) {
            return;
        }

        if (rc == NGX_BUSY) {
            goto mistake;
        }

        goto failed;
    }

    if (targets.broadcast || targets.channels) {

        if (msg.type == NGX_HTTP_MPNS_CALLBACK) {
            err.status = NGX_HTTP_BAD_REQUEST;
            err.text = "a callback is registered for one channel";
            err.field = ngx_http_mpns_type_field;
            goto mistake;
        }

        rc = ngx_http_mpns_batch_start(r, &msg, &targets, &err);

        if (rc == NGX_DECLINED) {
            goto mistake;
        }

        if (rc != NGX_OK) {
            goto failed;
        }

        return;
    }

    job = ngx_http_mpns_job_create(mmcf->engine, r->connection->log);
    if (job == NULL) {
        goto failed;
    }

    rc = ngx_http_mpns_request_channel(r, mlcf, channel, job->pool, job,
                                       &target, &err);

    /* MPNS takes callbacks from authenticated services only */

    if (rc == NGX_OK && msg.type == NGX_HTTP_MPNS_CALLBACK
        && job->ssl == NULL)
    {
        err.status = NGX_HTTP_BAD_REQUEST;
        err.text = "a callback needs an https channel";
        err.field = ngx_http_mpns_channel_field;
        rc = NGX_DECLINED;
    }

    if (rc != NGX_OK
        || ngx_http_mpns_message_request(r->pool, &msg, &target,
                                         &job->request)
           != NGX_OK)
    {
        ngx_http_mpns_job_cancel(job);

        if (rc == NGX_DECLINED) {
            goto mistake;
        }

        goto failed;
    }

    /* a 412 or 406 still holding: MPNS is not asked again */

    if (ngx_http_mpns_hold_check(&mlcf->hold, channel, &outcome, &status,
                                 &left)
        == NGX_OK)
    {
        ngx_http_mpns_job_cancel(job);

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "mpns send to \"%V\" held: %V for %T s more",
                      channel, &ngx_http_mpns_outcome(outcome)->name, left);

        ctx->response.status = status;
        ctx->outcome = outcome;
        ctx->retry_after = left;
        ctx->message_id = msg.message_id;
        ctx->counts.sent = 1;
        ctx->counts.failed = 1;
        ctx->done = 1;

        ngx_http_finalize_request(r, ngx_http_mpns_send_result(r, ctx));
        return;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        ngx_http_mpns_job_cancel(job);
        goto failed;
    }

    cln->handler = ngx_http_mpns_cleanup;
    cln->data = r;

    job->connect_timeout = mlcf->connect_timeout;
    job->send_timeout = mlcf->send_timeout;
    job->read_timeout = mlcf->read_timeout;
    job->retries = mlcf->retries;
    job->retry_timeout = mlcf->retry_timeout;
    job->retry_delay = mlcf->retry_delay;
    job->handler = ngx_http_mpns_send_done;
    job->data = r;

    ctx->job = job;
    ctx->message_id = msg.message_id;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "mpns send %V to \"%V\"",
                   ngx_http_mpns_type_name(msg.type), channel);

    /* a client that goes away cancels the send, see the cleanup */

    r->read_event_handler = ngx_http_test_reading;

    ctx->starting = 1;
    ngx_http_mpns_job_start(job);
    ctx->starting = 0;

    if (ctx->done) {
        ngx_http_finalize_request(r, ngx_http_mpns_send_result(r, ctx));
    }

    return;

mistake:

    ngx_http_finalize_request(r, ngx_http_mpns_send_error(r, &err));
    return;

failed:

    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
}


/*
 * A send that goes into the outbox: NGX_OK once answered (202),
 * NGX_DECLINED to send now, NGX_BUSY for a mistake in "err" (the caller
 * answers it), NGX_ERROR.
 */

static ngx_int_t
ngx_http_mpns_background(ngx_http_request_t *r, ngx_http_mpns_message_t *msg,
    ngx_http_mpns_targets_t *targets, ngx_http_mpns_error_t *err)
{
    u_char                     *p, *buf, id[NGX_HTTP_MPNS_ID_LEN];
    ngx_int_t                   rc, n;
    ngx_msec_t                  now, due;
    ngx_uint_t                  background;
    ngx_http_mpns_ctx_t        *ctx;
    ngx_http_mpns_target_t      target;
    ngx_http_mpns_loc_conf_t   *mlcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_mpns_module);

    background = (mlcf->outbox.mode == NGX_HTTP_MPNS_MODE_BACKGROUND);

    if (targets->async.len) {
        if (!mlcf->outbox.async && !background) {
            return ngx_http_mpns_refuse(err, "async is not allowed here",
                                        "async");
        }

        if (targets->async.len == 4
            && ngx_strncmp(targets->async.data, "true", 4) == 0)
        {
            background = 1;

        } else if (targets->async.len == 5
                   && ngx_strncmp(targets->async.data, "false", 5) == 0)
        {
            background = 0;

        } else {
            return ngx_http_mpns_refuse(err, "invalid value", "async");
        }
    }

    now = ngx_http_mpns_outbox_now();
    due = now;

    if (targets->delay.len) {
        n = ngx_atoi(targets->delay.data, targets->delay.len);

        if (n == NGX_ERROR || n > 30 * 86400) {
            return ngx_http_mpns_refuse(err, "invalid value", "delay");
        }

        due = now + (ngx_msec_t) n * 1000;
    }

    if (targets->send_at.len) {
        if (targets->delay.len) {
            return ngx_http_mpns_refuse(err, "both send_at and delay given",
                                        "send_at");
        }

        if (ngx_http_mpns_parse_rfc3339(&targets->send_at, &due) != NGX_OK)
        {
            return ngx_http_mpns_refuse(err, "invalid value", "send_at");
        }
    }

    if ((targets->delay.len || targets->send_at.len) && mlcf->outbox.zone
        && (mlcf->outbox.async
            || mlcf->outbox.mode == NGX_HTTP_MPNS_MODE_BACKGROUND))
    {
        /* a scheduled send goes through the outbox */
        background = 1;
    }

    if (!background) {
        if (targets->delay.len || targets->send_at.len) {
            return ngx_http_mpns_refuse(err,
                                        "scheduled sends are sent in the "
                                        "background", targets->delay.len
                                                      ? "delay" : "send_at");
        }

        return NGX_DECLINED;
    }

    if (targets->channels) {
        return ngx_http_mpns_refuse(err, "lists are sent in wait mode",
                                    "channels");
    }

    if (msg->type == NGX_HTTP_MPNS_CALLBACK) {
        return ngx_http_mpns_refuse(err,
                                    "a callback is registered in wait mode",
                                    "type");
    }

    if (targets->broadcast) {
        ngx_str_null(&ctx->channel);
        goto add;
    }

    if (ctx->channel.data == NULL) {
        return ngx_http_mpns_refuse(err, "missing field", "channel");
    }

    rc = ngx_http_mpns_request_channel(r, mlcf, &ctx->channel, r->pool, NULL,
                                       &target, err);
    if (rc == NGX_DECLINED) {
        return NGX_BUSY;
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

add:

    rc = ngx_http_mpns_outbox_add(r, msg, &ctx->channel,
                                  targets->broadcast ? &targets->filter
                                                     : NULL,
                                  due, id);

    if (rc == NGX_BUSY) {
        err->status = NGX_HTTP_INSUFFICIENT_STORAGE;
        err->text = "outbox is full";
        ngx_str_set(&err->field, "channel");
        return NGX_BUSY;
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->message_id = msg->message_id;

    buf = ngx_pnalloc(r->pool, sizeof("{\"id\":\"\",\"state\":\"pending\","
                                      "\"message_id\":\"\",\"due_in_ms\":}\n")
                               + NGX_HTTP_MPNS_ID_LEN + 36 + NGX_TIME_T_LEN);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(buf, "{\"id\":\"%*s\",\"state\":\"pending\","
                         "\"message_id\":\"%V\",\"due_in_ms\":%M}\n",
                    (size_t) NGX_HTTP_MPNS_ID_LEN, id, &msg->message_id,
                    due > now ? due - now : 0);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "mpns background send %*s", (size_t) NGX_HTTP_MPNS_ID_LEN,
                   id);

    ngx_http_finalize_request(r, ngx_http_mpns_send_json(r,
                                                         NGX_HTTP_ACCEPTED,
                                                         buf, p - buf));
    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_refuse(ngx_http_mpns_error_t *err, char *text, char *field)
{
    err->status = NGX_HTTP_BAD_REQUEST;
    err->text = text;
    err->field.data = (u_char *) field;
    err->field.len = ngx_strlen(field);

    return NGX_BUSY;
}


/* "2026-11-23T10:00:00Z", "2026-11-23T11:00:00.5+01:00" */

static ngx_int_t
ngx_http_mpns_parse_rfc3339(ngx_str_t *s, ngx_msec_t *ms)
{
    u_char      *p, *last;
    ngx_int_t    v[6], sign, tz, i, n, y, m, days;
    ngx_msec_t   frac;

    static ngx_uint_t  widths[] = { 4, 2, 2, 2, 2, 2 };
    static u_char      seps[] = { '-', '-', 'T', ':', ':', 0 };
    static u_char      mdays[] = { 31, 28, 31, 30, 31, 30,
                                   31, 31, 30, 31, 30, 31 };

    p = s->data;
    last = p + s->len;

    for (i = 0; i < 6; i++) {
        if ((size_t) (last - p) < widths[i]) {
            return NGX_ERROR;
        }

        v[i] = ngx_atoi(p, widths[i]);

        if (v[i] == NGX_ERROR) {
            return NGX_ERROR;
        }

        p += widths[i];

        if (seps[i]) {
            if (p == last || (*p != seps[i] && !(i == 2 && *p == 't'))) {
                return NGX_ERROR;
            }

            p++;
        }
    }

    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23
        || v[4] > 59 || v[5] > 60)
    {
        return NGX_ERROR;
    }

    /* February 29 in leap years only */

    if (v[2] > mdays[v[1] - 1]
               + (v[1] == 2 && v[0] % 4 == 0
                  && (v[0] % 100 != 0 || v[0] % 400 == 0)))
    {
        return NGX_ERROR;
    }

    frac = 0;

    if (p < last && *p == '.') {
        for (p++, n = 0; p < last && *p >= '0' && *p <= '9'; p++, n++) {
            if (n < 3) {
                frac = frac * 10 + (*p - '0');
            }
        }

        if (n == 0) {
            return NGX_ERROR;
        }

        for ( /* void */ ; n < 3; n++) {
            frac *= 10;
        }
    }

    if (p < last && (*p == 'Z' || *p == 'z') && p + 1 == last) {
        tz = 0;

    } else if (last - p == 6 && (*p == '+' || *p == '-') && p[3] == ':') {
        sign = (*p == '-') ? -1 : 1;
        n = ngx_atoi(p + 1, 2);
        m = ngx_atoi(p + 4, 2);

        if (n == NGX_ERROR || m == NGX_ERROR || n > 23 || m > 59) {
            return NGX_ERROR;
        }

        tz = sign * (n * 3600 + m * 60);

    } else {
        return NGX_ERROR;
    }

    /* days since the epoch of a proleptic Gregorian date */

    y = v[0] - (v[1] <= 2);
    m = v[1] <= 2 ? v[1] + 9 : v[1] - 3;

    days = 365 * y + y / 4 - y / 100 + y / 400 + (153 * m + 2) / 5 + v[2]
           - 719469;

    n = days * 86400 + v[3] * 3600 + v[4] * 60 + v[5] - tz;

    if (n < 0) {
        return NGX_ERROR;
    }

    *ms = (ngx_msec_t) n * 1000 + frac;

    return NGX_OK;
}


static void
ngx_http_mpns_send_done(ngx_http_mpns_job_t *job)
{
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_mpns_ctx_t       *ctx;
    ngx_http_mpns_response_t  *src, *dst;
    ngx_http_mpns_loc_conf_t  *mlcf;

    r = job->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_mpns_module);

    /* the job's pool goes away when this returns */

    src = &job->response;
    dst = &ctx->response;

    dst->status = src->status;

    if (ngx_http_mpns_copy(r->pool, &dst->notification_status,
                           &src->notification_status) != NGX_OK
        || ngx_http_mpns_copy(r->pool, &dst->subscription_status,
                              &src->subscription_status) != NGX_OK
        || ngx_http_mpns_copy(r->pool, &dst->device_connection_status,
                              &src->device_connection_status) != NGX_OK
        || ngx_http_mpns_copy(r->pool, &dst->message_id, &src->message_id)
           != NGX_OK)
    {
        ctx->failed = 1;
    }

    ctx->outcome = job->outcome;
    ctx->attempts = job->attempts;

    ctx->counts.sent = 1;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);

    ngx_http_mpns_hold_set(&mlcf->hold, &ctx->channel, job->outcome,
                           job->response.status, c->log);

    ctx->retry_after = ngx_http_mpns_hold_window(&mlcf->hold, job->outcome);

    if (job->outcome == NGX_HTTP_MPNS_DELIVERED) {
        ctx->counts.delivered = 1;

    } else if (job->outcome == NGX_HTTP_MPNS_EXPIRED) {
        ctx->counts.expired = 1;

    } else {
        ctx->counts.failed = 1;
    }

    ctx->elapsed = job->elapsed;
    ctx->job = NULL;
    ctx->done = 1;

    if (ctx->starting) {
        return;
    }

    ngx_http_finalize_request(r, ngx_http_mpns_send_result(r, ctx));
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_mpns_cleanup(void *data)
{
    ngx_http_request_t *r = data;

    ngx_http_mpns_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_mpns_module);

    if (ctx && ctx->job) {
        ngx_http_mpns_job_cancel(ctx->job);
        ctx->job = NULL;
    }
}


static ngx_int_t
ngx_http_mpns_send_result(ngx_http_request_t *r, ngx_http_mpns_ctx_t *ctx)
{
    u_char                    *p, *buf;
    size_t                     len;
    time_t                     retry_after;
    ngx_str_t                 *s, null;
    ngx_uint_t                 i, status;
    ngx_http_mpns_outcome_t   *outcome;
    ngx_http_mpns_response_t  *resp;

    static char  *keys[] = {
        "\"notification_status\":",
        "\"subscription_status\":",
        "\"device_connection_status\":"
    };

    if (ctx->failed) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    resp = &ctx->response;
    outcome = ngx_http_mpns_outcome(ctx->outcome);

    if (resp->status) {
        status = resp->status;

    } else if (ctx->outcome == NGX_HTTP_MPNS_TIMEOUT) {
        status = NGX_HTTP_GATEWAY_TIME_OUT;

    } else {
        status = NGX_HTTP_BAD_GATEWAY;
    }

    if (ngx_http_mpns_add_header(r, "X-NotificationStatus",
                                 &resp->notification_status) != NGX_OK
        || ngx_http_mpns_add_header(r, "X-SubscriptionStatus",
                                    &resp->subscription_status) != NGX_OK
        || ngx_http_mpns_add_header(r, "X-DeviceConnectionStatus",
                                    &resp->device_connection_status)
           != NGX_OK
        || ngx_http_mpns_add_header(r, "X-MessageID", &resp->message_id)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&null, "null");

    /* the message id, outcome and action need no escaping */

    len = sizeof("{\"channel\":,\"status\":,\"message_id\":\"\","
                 "\"outcome\":\"\",\"action\":\"\",\"retry_after\":,"
                 "\"attempts\":,\"time_ms\":}\n") - 1
          + ngx_http_mpns_json_str_len(&ctx->channel)
          + NGX_INT_T_LEN
          + ctx->message_id.len + outcome->name.len + outcome->action.len
          + NGX_TIME_T_LEN + NGX_INT_T_LEN + NGX_INT_T_LEN;

    for (i = 0; i < 3; i++) {
        s = &resp->notification_status + i;
        len += 1 + ngx_strlen(keys[i])
               + (s->len ? ngx_http_mpns_json_str_len(s) : null.len);
    }

    buf = ngx_pnalloc(r->pool, len);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(buf, "{\"channel\":", sizeof("{\"channel\":") - 1);
    p = ngx_http_mpns_json_str(p, &ctx->channel);

    p = ngx_cpymem(p, ",\"status\":", sizeof(",\"status\":") - 1);
    p = resp->status ? ngx_sprintf(p, "%ui", resp->status)
                     : ngx_cpymem(p, null.data, null.len);

    for (i = 0; i < 3; i++) {
        s = &resp->notification_status + i;

        *p++ = ',';
        p = ngx_cpymem(p, keys[i], ngx_strlen(keys[i]));
        p = s->len ? ngx_http_mpns_json_str(p, s)
                   : ngx_cpymem(p, null.data, null.len);
    }

    p = ngx_cpymem(p, ",\"message_id\":\"", sizeof(",\"message_id\":\"") - 1);
    p = ngx_cpymem(p, ctx->message_id.data, ctx->message_id.len);

    p = ngx_cpymem(p, "\",\"outcome\":\"", sizeof("\",\"outcome\":\"") - 1);
    p = ngx_cpymem(p, outcome->name.data, outcome->name.len);

    p = ngx_cpymem(p, "\",\"action\":\"", sizeof("\",\"action\":\"") - 1);
    p = ngx_cpymem(p, outcome->action.data, outcome->action.len);
    *p++ = '"';

    p = ngx_cpymem(p, ",\"retry_after\":", sizeof(",\"retry_after\":") - 1);
    retry_after = ctx->retry_after ? ctx->retry_after : outcome->retry_after;

    p = retry_after ? ngx_sprintf(p, "%T", retry_after)
                    : ngx_cpymem(p, null.data, null.len);

    p = ngx_sprintf(p, ",\"attempts\":%ui,\"time_ms\":%M}\n",
                    ctx->attempts, ctx->elapsed);

    if ((size_t) (p - buf) > len) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "mpns result: buffer overflow");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mpns_send_json(r, status, buf, p - buf);
}


ngx_int_t
ngx_http_mpns_send_error(ngx_http_request_t *r, ngx_http_mpns_error_t *err)
{
    u_char               *p, *buf;
    size_t                len;
    ngx_str_t             text;
    ngx_http_mpns_ctx_t  *ctx;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "mpns request refused: %s, field \"%V\"",
                  err->text, &err->field);

    ctx = ngx_http_get_module_ctx(r, ngx_http_mpns_module);

    if (ctx) {
        ctx->error = err->text;
    }

    text.data = (u_char *) err->text;
    text.len = ngx_strlen(err->text);

    len = sizeof("{\"error\":,\"field\":}\n") - 1
          + ngx_http_mpns_json_str_len(&text)
          + ngx_http_mpns_json_str_len(&err->field);

    buf = ngx_pnalloc(r->pool, len);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(buf, "{\"error\":", sizeof("{\"error\":") - 1);
    p = ngx_http_mpns_json_str(p, &text);
    p = ngx_cpymem(p, ",\"field\":", sizeof(",\"field\":") - 1);
    p = ngx_http_mpns_json_str(p, &err->field);
    *p++ = '}';
    *p++ = LF;

    return ngx_http_mpns_send_json(r, err->status, buf, p - buf);
}


ngx_int_t
ngx_http_mpns_send_json(ngx_http_request_t *r, ngx_uint_t status, u_char *p,
    size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = p;
    b->last = p + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_mpns_add_header(ngx_http_request_t *r, char *name, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    if (value->len == 0) {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_copy(ngx_pool_t *pool, ngx_str_t *dst, ngx_str_t *src)
{
    dst->len = src->len;

    if (src->len == 0) {
        dst->data = NULL;
        return NGX_OK;
    }

    dst->data = ngx_pstrdup(pool, src);

    return dst->data ? NGX_OK : NGX_ERROR;
}


static ngx_int_t
ngx_http_mpns_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_mpns_add_variables(cf);
}


static void *
ngx_http_mpns_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_mpns_main_conf_t  *mmcf;

    mmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpns_main_conf_t));
    if (mmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mmcf->engine = NULL;
     */

    mmcf->keepalive = NGX_CONF_UNSET_UINT;
    mmcf->keepalive_timeout = NGX_CONF_UNSET_MSEC;
    mmcf->worker_concurrency = NGX_CONF_UNSET_UINT;

    if (ngx_array_init(&mmcf->registries, cf->pool, 1,
                       sizeof(ngx_shm_zone_t *))
        != NGX_OK
        || ngx_array_init(&mmcf->outboxes, cf->pool, 1,
                          sizeof(ngx_shm_zone_t *))
           != NGX_OK)
    {
        return NULL;
    }

    return mmcf;
}


static char *
ngx_http_mpns_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_mpns_main_conf_t *mmcf = conf;

    ngx_conf_init_uint_value(mmcf->keepalive, 32);
    ngx_conf_init_msec_value(mmcf->keepalive_timeout, 60000);
    ngx_conf_init_uint_value(mmcf->worker_concurrency, 1000);

    return NGX_CONF_OK;
}


static void *
ngx_http_mpns_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_mpns_loc_conf_t  *mlcf;

    mlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpns_loc_conf_t));
    if (mlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mlcf->send = 0;
     *     mlcf->type = 0;
     *     mlcf->registry = NULL;
     *     mlcf->broadcast = NULL;
     */

    mlcf->channel = NGX_CONF_UNSET_PTR;
    mlcf->proxy = NGX_CONF_UNSET_PTR;
    mlcf->fields = NGX_CONF_UNSET_PTR;
    mlcf->allowed_hosts = NGX_CONF_UNSET_PTR;
    mlcf->max_payload_size = NGX_CONF_UNSET_SIZE;
    mlcf->max_body_size = NGX_CONF_UNSET_SIZE;
    mlcf->connect_timeout = NGX_CONF_UNSET_MSEC;
    mlcf->send_timeout = NGX_CONF_UNSET_MSEC;
    mlcf->read_timeout = NGX_CONF_UNSET_MSEC;
    mlcf->retries = NGX_CONF_UNSET_UINT;
    mlcf->retry_timeout = NGX_CONF_UNSET_MSEC;
    mlcf->retry_delay = NGX_CONF_UNSET_MSEC;
    mlcf->concurrency = NGX_CONF_UNSET_UINT;
    mlcf->remove_expired = NGX_CONF_UNSET;
    mlcf->report_failures = NGX_CONF_UNSET_UINT;

    ngx_http_mpns_ssl_create_conf(&mlcf->ssl);
    ngx_http_mpns_hold_create_conf(&mlcf->hold);
    ngx_http_mpns_outbox_create_conf(&mlcf->outbox);

    return mlcf;
}


static char *
ngx_http_mpns_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_mpns_loc_conf_t *prev = parent;
    ngx_http_mpns_loc_conf_t *conf = child;

    ngx_str_t  hosts = ngx_string(NGX_HTTP_MPNS_DEFAULT_HOSTS);

    ngx_conf_merge_ptr_value(conf->channel, prev->channel, NULL);
    ngx_conf_merge_ptr_value(conf->proxy, prev->proxy, NULL);
    ngx_conf_merge_ptr_value(conf->fields, prev->fields, NULL);
    ngx_conf_merge_ptr_value(conf->allowed_hosts, prev->allowed_hosts, NULL);

    if (conf->allowed_hosts == NULL) {

        /* the default is compiled once, at the http level */

        if (prev->allowed_hosts == NULL
            || prev->allowed_hosts == NGX_CONF_UNSET_PTR)
        {
            prev->allowed_hosts = ngx_array_create(cf->pool, 1,
                                                   sizeof(ngx_regex_elt_t));
            if (prev->allowed_hosts == NULL) {
                return NGX_CONF_ERROR;
            }

            if (ngx_http_mpns_add_host(cf, prev->allowed_hosts, &hosts)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }
        }

        conf->allowed_hosts = prev->allowed_hosts;
    }

    ngx_conf_merge_size_value(conf->max_payload_size, prev->max_payload_size,
                              1024);
    ngx_conf_merge_size_value(conf->max_body_size, prev->max_body_size,
                              16384);
    ngx_conf_merge_msec_value(conf->connect_timeout, prev->connect_timeout,
                              15000);
    ngx_conf_merge_msec_value(conf->send_timeout, prev->send_timeout, 15000);
    ngx_conf_merge_msec_value(conf->read_timeout, prev->read_timeout, 15000);
    ngx_conf_merge_uint_value(conf->retries, prev->retries, 2);
    ngx_conf_merge_msec_value(conf->retry_timeout, prev->retry_timeout,
                              10000);
    ngx_conf_merge_msec_value(conf->retry_delay, prev->retry_delay, 1000);

    if (ngx_http_mpns_ssl_merge_conf(cf, &conf->ssl, &prev->ssl)
        != NGX_CONF_OK
        || ngx_http_mpns_hold_merge_conf(cf, &conf->hold, &prev->hold)
           != NGX_CONF_OK
        || ngx_http_mpns_outbox_merge_conf(cf, conf, &conf->outbox,
                                           &prev->outbox)
           != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_uint_value(conf->concurrency, prev->concurrency, 100);
    ngx_conf_merge_value(conf->remove_expired, prev->remove_expired, 1);
    ngx_conf_merge_uint_value(conf->report_failures, prev->report_failures,
                              100);

    if (ngx_http_mpns_registry_check(cf, conf->registry) != NGX_CONF_OK
        || ngx_http_mpns_registry_check(cf, conf->broadcast) != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_mpns_send(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_loc_conf_t *mlcf = conf;

    ngx_int_t                  type;
    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (mlcf->send || mlcf->broadcast || mlcf->registry) {
        return "is duplicate";
    }

    mlcf->send = 1;

    value = cf->args->elts;

    if (cf->args->nelts == 2) {
        type = ngx_http_mpns_type(&value[1]);

        if (type == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }

        mlcf->type = type;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_mpns_send_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_mpns_broadcast(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_loc_conf_t *mlcf = conf;

    ngx_int_t                  type;
    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (mlcf->send || mlcf->broadcast || mlcf->registry) {
        return "is duplicate";
    }

    value = cf->args->elts;

    mlcf->broadcast = ngx_http_mpns_registry_add(cf, &value[1]);
    if (mlcf->broadcast == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        type = ngx_http_mpns_type(&value[2]);

        if (type == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        mlcf->type = type;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_mpns_send_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_mpns_proxy(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_loc_conf_t *mlcf = conf;

    ngx_url_t               u;
    ngx_str_t              *value, url;
    ngx_http_mpns_proxy_t  *proxy;

    if (mlcf->proxy != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        mlcf->proxy = NULL;
        return NGX_CONF_OK;
    }

    url = value[1];

    if (url.len > 7
        && ngx_strncasecmp(url.data, (u_char *) "http://", 7) == 0)
    {
        url.data += 7;
        url.len -= 7;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid proxy \"%V\": only http proxies are "
                           "supported", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (url.len && url.data[url.len - 1] == '/') {
        url.len--;
    }

    if (ngx_strlchr(url.data, url.data + url.len, '/') != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid proxy \"%V\": a path is not allowed",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = url;
    u.default_port = 3128;

    /* like proxy_pass to a name: resolved once, here */

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in proxy \"%V\"", u.err, &value[1]);
        }

        return NGX_CONF_ERROR;
    }


    proxy = ngx_palloc(cf->pool, sizeof(ngx_http_mpns_proxy_t));
    if (proxy == NULL) {
        return NGX_CONF_ERROR;
    }

    proxy->addrs = u.addrs;
    proxy->naddrs = u.naddrs;
    proxy->name = url;

    mlcf->proxy = proxy;

    return NGX_CONF_OK;
}


static char *
ngx_http_mpns_field_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_mpns_loc_conf_t *mlcf = conf;

    ngx_int_t                          index;
    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_mpns_conf_field_t        *field;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    index = ngx_http_mpns_field_index(&value[1]);

    if (index == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown mpns field \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (mlcf->fields == NGX_CONF_UNSET_PTR) {
        mlcf->fields = ngx_array_create(cf->pool, 4,
                                        sizeof(ngx_http_mpns_conf_field_t));
        if (mlcf->fields == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    field = mlcf->fields->elts;

    for (i = 0; i < mlcf->fields->nelts; i++) {
        if (field[i].index == (ngx_uint_t) index) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate mpns field \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    field = ngx_array_push(mlcf->fields);
    if (field == NULL) {
        return NGX_CONF_ERROR;
    }

    field->index = index;

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = &field->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_mpns_allowed_hosts(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_loc_conf_t *mlcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (mlcf->allowed_hosts != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    mlcf->allowed_hosts = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                           sizeof(ngx_regex_elt_t));
    if (mlcf->allowed_hosts == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (ngx_http_mpns_add_host(cf, mlcf->allowed_hosts, &value[i])
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_mpns_add_host(ngx_conf_t *cf, ngx_array_t *hosts,
    ngx_str_t *pattern)
{
    u_char               errstr[NGX_MAX_CONF_ERRSTR];
    ngx_regex_elt_t     *re;
    ngx_regex_compile_t  rc;

    ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

    rc.pattern = *pattern;
    rc.pool = cf->pool;
    rc.options = NGX_REGEX_CASELESS;
    rc.err.len = NGX_MAX_CONF_ERRSTR;
    rc.err.data = errstr;

    if (ngx_regex_compile(&rc) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V", &rc.err);
        return NGX_ERROR;
    }

    re = ngx_array_push(hosts);
    if (re == NULL) {
        return NGX_ERROR;
    }

    re->regex = rc.regex;
    re->name = pattern->data;

    return NGX_OK;
}


/* "zone=NAME:SIZE" of the mpns_*_zone directives */

ngx_int_t
ngx_http_mpns_zone_param(ngx_conf_t *cf, ngx_str_t *value, ngx_str_t *name,
    ssize_t *size)
{
    u_char     *p;
    ngx_str_t   s;

    if (ngx_strncmp(value->data, "zone=", 5) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", value);
        return NGX_ERROR;
    }

    name->data = value->data + 5;

    p = (u_char *) ngx_strchr(name->data, ':');

    if (p == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", value);
        return NGX_ERROR;
    }

    name->len = p - name->data;

    if (name->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone name \"%V\"", value);
        return NGX_ERROR;
    }

    s.data = p + 1;
    s.len = value->data + value->len - s.data;

    *size = ngx_parse_size(&s);

    if (*size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", value);
        return NGX_ERROR;
    }

    if (*size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small", value);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the module's own "nginx -V" line: its version and the nginx it is for */

static ngx_int_t
ngx_http_mpns_init_module(ngx_cycle_t *cycle)
{
    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "ngx_http_mpns_module/" NGX_HTTP_MPNS_VERSION
                  " built for nginx/" NGINX_VERSION);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_init_process(ngx_cycle_t *cycle)
{
    ngx_http_mpns_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mpns_module);

    if (mmcf == NULL) {
        return NGX_OK;
    }

    mmcf->engine = ngx_http_mpns_engine_create(cycle, mmcf->keepalive,
                                               mmcf->keepalive_timeout);
    if (mmcf->engine == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_mpns_outbox_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_mpns_registry_init_process(cycle);
}


static void
ngx_http_mpns_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_mpns_outbox_exit_process(cycle);
    ngx_http_mpns_registry_exit_process(cycle);
}
