
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"
#include "ngx_http_mpns_json.h"


#define NGX_HTTP_MPNS_DEFAULT_HOSTS     "(^|\\.)notify\\.live\\.net$"



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
static char *ngx_http_mpns_allowed_addresses(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_mpns_allowed_ports(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mpns_broadcast(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mpns_proxy(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mpns_tiles(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mpns_pin_request(ngx_conf_t *cf, ngx_command_t *cmd,
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

static ngx_conf_num_bounds_t  ngx_http_mpns_rate_bounds = {
    ngx_conf_check_num_bounds, 0, 1000000
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

static ngx_conf_enum_t  ngx_http_mpns_register_tiles[] = {
    { ngx_string("off"), NGX_HTTP_MPNS_REGISTER_OFF },
    { ngx_string("clear"), NGX_HTTP_MPNS_REGISTER_CLEAR },
    { ngx_string("replay"), NGX_HTTP_MPNS_REGISTER_REPLAY },
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

    { ngx_string("mpns_allowed_addresses"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_mpns_allowed_addresses,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_allowed_ports"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_mpns_allowed_ports,
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

    { ngx_string("mpns_response_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, response_timeout),
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

    { ngx_string("mpns_min_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, outbox.min_interval),
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

    { ngx_string("mpns_journal"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_mpns_state_journal,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_mpns_main_conf_t, journal),
      NULL },

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

    { ngx_string("mpns_counter"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpns_tiles,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_last_tile"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpns_tiles,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_register_tile"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, register_tile),
      &ngx_http_mpns_register_tiles },

    { ngx_string("mpns_pin_request"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_mpns_pin_request,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_rate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_loc_conf_t, rate),
      &ngx_http_mpns_rate_bounds },

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

    { ngx_string("mpns_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_mpns_status_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_mpns_status_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_status_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_mpns_status_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_mpns_module_ctx = {
    ngx_http_mpns_preconfiguration,        /* preconfiguration */
    ngx_http_mpns_status_init,             /* postconfiguration */

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


static ngx_int_t
ngx_http_mpns_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_mpns_add_variables(cf);
}


static void *
ngx_http_mpns_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_mpns_main_conf_t   *mmcf;
    ngx_http_mpns_port_range_t  *port;

    mmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpns_main_conf_t));
    if (mmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mmcf->engine = NULL;
     *     mmcf->status = NULL;
     */

    mmcf->keepalive = NGX_CONF_UNSET_UINT;
    mmcf->keepalive_timeout = NGX_CONF_UNSET_MSEC;
    mmcf->worker_concurrency = NGX_CONF_UNSET_UINT;

    ngx_http_mpns_state_create_conf(&mmcf->journal);

    if (ngx_array_init(&mmcf->registries, cf->pool, 1,
                       sizeof(ngx_shm_zone_t *))
        != NGX_OK
        || ngx_array_init(&mmcf->outboxes, cf->pool, 1,
                          sizeof(ngx_shm_zone_t *))
           != NGX_OK)
    {
        return NULL;
    }

    /* public addresses, and the ports of http and https channel URIs */

    mmcf->addresses.special = ngx_http_mpns_special_addresses(cf);
    if (mmcf->addresses.special == NULL) {
        return NULL;
    }

    mmcf->addresses.public = 1;

    if (ngx_array_init(&mmcf->ports, cf->pool, 2,
                       sizeof(ngx_http_mpns_port_range_t))
        != NGX_OK)
    {
        return NULL;
    }

    port = ngx_array_push_n(&mmcf->ports, 2);
    if (port == NULL) {
        return NULL;
    }

    port[0].low = 80;
    port[0].high = 80;
    port[1].low = 443;
    port[1].high = 443;

    return mmcf;
}


static char *
ngx_http_mpns_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_mpns_main_conf_t *mmcf = conf;

    ngx_conf_init_uint_value(mmcf->keepalive, 32);
    ngx_conf_init_msec_value(mmcf->keepalive_timeout, 60000);
    ngx_conf_init_uint_value(mmcf->worker_concurrency, 1000);

    return ngx_http_mpns_state_init_conf(cf, &mmcf->journal);
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
     *     mlcf->allowed = NULL;
     *     mlcf->pin = { 0, NULL };
     */

    /* the one push service there is, until a directive chooses */
    mlcf->service = &ngx_http_mpns_service_mpns;

    mlcf->channel = NGX_CONF_UNSET_PTR;
    mlcf->proxy = NGX_CONF_UNSET_PTR;
    mlcf->fields = NGX_CONF_UNSET_PTR;
    mlcf->allowed_hosts = NGX_CONF_UNSET_PTR;
    mlcf->allowed_addresses = NGX_CONF_UNSET_PTR;
    mlcf->allowed_ports = NGX_CONF_UNSET_PTR;
    mlcf->max_payload_size = NGX_CONF_UNSET_SIZE;
    mlcf->max_body_size = NGX_CONF_UNSET_SIZE;
    mlcf->connect_timeout = NGX_CONF_UNSET_MSEC;
    mlcf->send_timeout = NGX_CONF_UNSET_MSEC;
    mlcf->read_timeout = NGX_CONF_UNSET_MSEC;
    mlcf->response_timeout = NGX_CONF_UNSET_MSEC;
    mlcf->retries = NGX_CONF_UNSET_UINT;
    mlcf->retry_timeout = NGX_CONF_UNSET_MSEC;
    mlcf->retry_delay = NGX_CONF_UNSET_MSEC;
    mlcf->concurrency = NGX_CONF_UNSET_UINT;
    mlcf->rate = NGX_CONF_UNSET_UINT;
    mlcf->remove_expired = NGX_CONF_UNSET;
    mlcf->report_failures = NGX_CONF_UNSET_UINT;
    mlcf->tiles = NGX_CONF_UNSET_PTR;
    mlcf->counter = NGX_CONF_UNSET;
    mlcf->register_tile = NGX_CONF_UNSET_UINT;

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

    ngx_str_t                   hosts = ngx_string(NGX_HTTP_MPNS_DEFAULT_HOSTS);
    ngx_http_mpns_main_conf_t  *mmcf;

    mmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_mpns_module);

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

    ngx_conf_merge_ptr_value(conf->allowed_addresses,
                             prev->allowed_addresses, &mmcf->addresses);
    ngx_conf_merge_ptr_value(conf->allowed_ports, prev->allowed_ports,
                             &mmcf->ports);

    if (conf->send || conf->broadcast) {
        conf->allowed = ngx_pcalloc(cf->pool,
                                    sizeof(ngx_http_mpns_allowed_t));
        if (conf->allowed == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    ngx_conf_merge_size_value(conf->max_payload_size, prev->max_payload_size,
                              1024);
    ngx_conf_merge_size_value(conf->max_body_size, prev->max_body_size,
                              16384);
    ngx_conf_merge_msec_value(conf->connect_timeout, prev->connect_timeout,
                              15000);
    ngx_conf_merge_msec_value(conf->send_timeout, prev->send_timeout, 15000);
    ngx_conf_merge_msec_value(conf->read_timeout, prev->read_timeout, 15000);
    ngx_conf_merge_msec_value(conf->response_timeout, prev->response_timeout,
                              15000);
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
    ngx_conf_merge_uint_value(conf->rate, prev->rate, 0);
    ngx_conf_merge_value(conf->remove_expired, prev->remove_expired, 1);
    ngx_conf_merge_uint_value(conf->report_failures, prev->report_failures,
                              100);

    /* mpns_counter and mpns_last_tile are one setting */

    if (conf->tiles == NGX_CONF_UNSET_PTR) {
        conf->tiles = prev->tiles;
        conf->counter = prev->counter;
    }

    ngx_conf_merge_ptr_value(conf->tiles, prev->tiles, NULL);
    ngx_conf_merge_value(conf->counter, prev->counter, 0);
    ngx_conf_merge_uint_value(conf->register_tile, prev->register_tile,
                              NGX_HTTP_MPNS_REGISTER_OFF);

    if (conf->pin.data == NULL) {
        conf->pin = prev->pin;
    }

    if (ngx_http_mpns_registry_check(cf, conf->registry) != NGX_CONF_OK
        || ngx_http_mpns_registry_check(cf, conf->broadcast) != NGX_CONF_OK
        || ngx_http_mpns_registry_check(cf, conf->tiles) != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* a tile's count and its pin request are known only as it is sent */

    if ((conf->send || conf->broadcast)
        && conf->outbox.mode == NGX_HTTP_MPNS_MODE_BACKGROUND
        && (conf->tiles || conf->pin.len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "tiles of a registry are sent in wait mode");
        return NGX_CONF_ERROR;
    }

    if ((conf->send || conf->broadcast)
        && ngx_http_mpns_status_slot(cf, &conf->status) != NGX_OK)
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
        type = ngx_http_mpns_service_mpns.type(&value[1]);

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
        type = ngx_http_mpns_service_mpns.type(&value[2]);

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

    index = ngx_http_mpns_service_mpns.field_index(&value[1]);

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


/* "public", "all", addresses and CIDR blocks, as in "allow" */

static char *
ngx_http_mpns_allowed_addresses(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_mpns_loc_conf_t *mlcf = conf;

    ngx_int_t                   rc;
    ngx_str_t                  *value;
    ngx_uint_t                  i;
    ngx_cidr_t                 *cidr;
    ngx_http_mpns_addresses_t  *addresses;
    ngx_http_mpns_main_conf_t  *mmcf;

    if (mlcf->allowed_addresses != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    addresses = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpns_addresses_t));
    if (addresses == NULL) {
        return NGX_CONF_ERROR;
    }

    mmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_mpns_module);

    addresses->special = mmcf->addresses.special;

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "public") == 0) {
            addresses->public = 1;
            continue;
        }

        if (addresses->cidrs == NULL) {
            addresses->cidrs = ngx_array_create(cf->pool, 2,
                                                sizeof(ngx_cidr_t));
            if (addresses->cidrs == NULL) {
                return NGX_CONF_ERROR;
            }
        }

        if (ngx_strcmp(value[i].data, "all") == 0) {

            /* 0.0.0.0/0 and ::/0 */

            cidr = ngx_array_push(addresses->cidrs);
            if (cidr == NULL) {
                return NGX_CONF_ERROR;
            }

            ngx_memzero(cidr, sizeof(ngx_cidr_t));
            cidr->family = AF_INET;

#if (NGX_HAVE_INET6)
            cidr = ngx_array_push(addresses->cidrs);
            if (cidr == NULL) {
                return NGX_CONF_ERROR;
            }

            ngx_memzero(cidr, sizeof(ngx_cidr_t));
            cidr->family = AF_INET6;
#endif

            continue;
        }

        cidr = ngx_array_push(addresses->cidrs);
        if (cidr == NULL) {
            return NGX_CONF_ERROR;
        }

        rc = ngx_ptocidr(&value[i], cidr);

        if (rc == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        if (rc == NGX_DONE) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "low address bits of %V are meaningless",
                               &value[i]);
        }
    }

    mlcf->allowed_addresses = addresses;

    return NGX_CONF_OK;
}


/* ports and ranges of ports: "443", "8000-8999" */

static char *
ngx_http_mpns_allowed_ports(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_loc_conf_t *mlcf = conf;

    u_char                      *dash;
    ngx_int_t                    low, high;
    ngx_str_t                   *value;
    ngx_uint_t                   i;
    ngx_http_mpns_port_range_t  *range;

    if (mlcf->allowed_ports != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    mlcf->allowed_ports = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                        sizeof(ngx_http_mpns_port_range_t));
    if (mlcf->allowed_ports == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        dash = ngx_strlchr(value[i].data, value[i].data + value[i].len, '-');

        if (dash == NULL) {
            low = ngx_atoi(value[i].data, value[i].len);
            high = low;

        } else {
            low = ngx_atoi(value[i].data, dash - value[i].data);
            high = ngx_atoi(dash + 1,
                            value[i].data + value[i].len - dash - 1);
        }

        if (low < 1 || high > 65535 || low > high) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        range = ngx_array_push(mlcf->allowed_ports);
        if (range == NULL) {
            return NGX_CONF_ERROR;
        }

        range->low = (in_port_t) low;
        range->high = (in_port_t) high;
    }

    return NGX_CONF_OK;
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


/* mpns_counter NAME, mpns_last_tile NAME: tile sends kept in a registry */

static char *
ngx_http_mpns_tiles(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_loc_conf_t *mlcf = conf;

    ngx_str_t  *value;

    if (mlcf->tiles != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    mlcf->counter = (cmd->name.len == sizeof("mpns_counter") - 1);

    if (ngx_strcmp(value[1].data, "off") == 0) {
        mlcf->tiles = NULL;
        return NGX_CONF_OK;
    }

    mlcf->tiles = ngx_http_mpns_registry_add(cf, &value[1]);
    if (mlcf->tiles == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_mpns_pin_request(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_loc_conf_t *mlcf = conf;

    ngx_str_t  *value;

    if (mlcf->pin.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        ngx_str_set(&mlcf->pin, "");
        return NGX_CONF_OK;
    }

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (value[1].len > NGX_HTTP_MPNS_MAX_TILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "payload is longer than %d bytes",
                           NGX_HTTP_MPNS_MAX_TILE);
        return NGX_CONF_ERROR;
    }

    mlcf->pin = value[1];

    return NGX_CONF_OK;
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

    if (ngx_http_mpns_outbox_init_process(cycle) != NGX_OK
        || ngx_http_mpns_background_init_process(cycle) != NGX_OK)
    {
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
