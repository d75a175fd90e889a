
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"


/* placeholder, replaced by the registry implementation */


char *
ngx_http_mpns_registry_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return "is not implemented";
}


char *
ngx_http_mpns_registry_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    return "is not implemented";
}


ngx_shm_zone_t *
ngx_http_mpns_registry_add(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "not implemented");
    return NULL;
}


char *
ngx_http_mpns_registry_check(ngx_conf_t *cf, ngx_shm_zone_t *zone)
{
    return NGX_CONF_OK;
}


ngx_http_mpns_registry_t *
ngx_http_mpns_registry_get(ngx_shm_zone_t *zone)
{
    return NULL;
}


ngx_str_t *
ngx_http_mpns_registry_name(ngx_http_mpns_registry_t *reg)
{
    return NULL;
}


ngx_int_t
ngx_http_mpns_registry_next(ngx_http_mpns_registry_t *reg,
    ngx_http_mpns_filter_t *filter, ngx_http_mpns_cursor_t *cursor,
    ngx_uint_t limit, ngx_http_mpns_entry_pt handler, void *data)
{
    cursor->done = 1;
    return NGX_OK;
}


ngx_int_t
ngx_http_mpns_registry_delete(ngx_http_mpns_registry_t *reg, ngx_uint_t by,
    ngx_str_t *value, ngx_uint_t *deleted)
{
    *deleted = 0;
    return NGX_OK;
}


ngx_int_t
ngx_http_mpns_registry_handler(ngx_http_request_t *r)
{
    return NGX_HTTP_NOT_IMPLEMENTED;
}


ngx_int_t
ngx_http_mpns_registry_init_process(ngx_cycle_t *cycle)
{
    return NGX_OK;
}


void
ngx_http_mpns_registry_exit_process(ngx_cycle_t *cycle)
{
}
