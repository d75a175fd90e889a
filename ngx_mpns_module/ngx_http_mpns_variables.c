
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"


#define NGX_HTTP_MPNS_VAR_NOTIFICATION   0
#define NGX_HTTP_MPNS_VAR_SUBSCRIPTION   1
#define NGX_HTTP_MPNS_VAR_DEVICE         2


static ngx_int_t ngx_http_mpns_variable_status(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpns_variable_header(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpns_variable_str(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpns_variable_outcome(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpns_variable_attempts(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpns_variable_response_time(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpns_variable_error(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpns_variable_count(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpns_variable_type(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpns_variable_host(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpns_variable_id(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_mpns_variable_version(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_http_mpns_ctx_t *ngx_http_mpns_variable_ctx(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, ngx_uint_t done);
static void ngx_http_mpns_variable_set(ngx_http_variable_value_t *v,
    u_char *data, size_t len);


static ngx_http_variable_t  ngx_http_mpns_vars[] = {

    { ngx_string("mpns_status"), NULL,
      ngx_http_mpns_variable_status, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_notification_status"), NULL,
      ngx_http_mpns_variable_header, NGX_HTTP_MPNS_VAR_NOTIFICATION,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_subscription_status"), NULL,
      ngx_http_mpns_variable_header, NGX_HTTP_MPNS_VAR_SUBSCRIPTION,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_device_connection_status"), NULL,
      ngx_http_mpns_variable_header, NGX_HTTP_MPNS_VAR_DEVICE,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_message_id"), NULL,
      ngx_http_mpns_variable_str,
      offsetof(ngx_http_mpns_ctx_t, message_id),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_channel"), NULL,
      ngx_http_mpns_variable_str,
      offsetof(ngx_http_mpns_ctx_t, channel),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_outcome"), NULL,
      ngx_http_mpns_variable_outcome, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_action"), NULL,
      ngx_http_mpns_variable_outcome, 1,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_attempts"), NULL,
      ngx_http_mpns_variable_attempts, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_response_time"), NULL,
      ngx_http_mpns_variable_response_time, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_error"), NULL,
      ngx_http_mpns_variable_error, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_sent"), NULL,
      ngx_http_mpns_variable_count,
      offsetof(ngx_http_mpns_ctx_t, counts.sent),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_delivered"), NULL,
      ngx_http_mpns_variable_count,
      offsetof(ngx_http_mpns_ctx_t, counts.delivered),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_expired"), NULL,
      ngx_http_mpns_variable_count,
      offsetof(ngx_http_mpns_ctx_t, counts.expired),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_failed"), NULL,
      ngx_http_mpns_variable_count,
      offsetof(ngx_http_mpns_ctx_t, counts.failed),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_type"), NULL,
      ngx_http_mpns_variable_type, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_host"), NULL,
      ngx_http_mpns_variable_host, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_id"), NULL,
      ngx_http_mpns_variable_id, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("mpns_version"), NULL,
      ngx_http_mpns_variable_version, 0, 0, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_mpns_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_mpns_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_variable_status(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char               *p;
    ngx_http_mpns_ctx_t  *ctx;

    ctx = ngx_http_mpns_variable_ctx(r, v, 1);
    if (ctx == NULL) {
        return NGX_OK;
    }

    if (ctx->response.status == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_http_mpns_variable_set(v, p,
                               ngx_sprintf(p, "%ui", ctx->response.status)
                               - p);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_variable_header(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t            *s;
    ngx_http_mpns_ctx_t  *ctx;

    ctx = ngx_http_mpns_variable_ctx(r, v, 1);
    if (ctx == NULL) {
        return NGX_OK;
    }

    s = &ctx->response.headers[data];

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_mpns_variable_set(v, s->data, s->len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_variable_str(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t            *s;
    ngx_http_mpns_ctx_t  *ctx;

    ctx = ngx_http_mpns_variable_ctx(r, v, 0);
    if (ctx == NULL) {
        return NGX_OK;
    }

    s = (ngx_str_t *) ((char *) ctx + data);

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_mpns_variable_set(v, s->data, s->len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_variable_outcome(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                *s;
    ngx_http_mpns_ctx_t      *ctx;
    ngx_http_mpns_outcome_t  *outcome;

    ctx = ngx_http_mpns_variable_ctx(r, v, 1);
    if (ctx == NULL) {
        return NGX_OK;
    }

    if (ctx->batch) {
        /* each recipient has its own; see $mpns_delivered and others */
        v->not_found = 1;
        return NGX_OK;
    }

    outcome = ngx_http_mpns_outcome(ctx->outcome);
    s = data ? &outcome->action : &outcome->name;

    ngx_http_mpns_variable_set(v, s->data, s->len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_variable_attempts(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char               *p;
    ngx_http_mpns_ctx_t  *ctx;

    ctx = ngx_http_mpns_variable_ctx(r, v, 1);
    if (ctx == NULL) {
        return NGX_OK;
    }

    if (ctx->batch) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_http_mpns_variable_set(v, p, ngx_sprintf(p, "%ui", ctx->attempts) - p);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_variable_response_time(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char               *p;
    ngx_http_mpns_ctx_t  *ctx;

    ctx = ngx_http_mpns_variable_ctx(r, v, 1);
    if (ctx == NULL) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN + 4);
    if (p == NULL) {
        return NGX_ERROR;
    }

    /* seconds with milliseconds, like $upstream_response_time */

    ngx_http_mpns_variable_set(v, p,
                               ngx_sprintf(p, "%T.%03M",
                                           (time_t) ctx->elapsed / 1000,
                                           ctx->elapsed % 1000)
                               - p);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_variable_error(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_mpns_ctx_t  *ctx;

    ctx = ngx_http_mpns_variable_ctx(r, v, 0);
    if (ctx == NULL) {
        return NGX_OK;
    }

    if (ctx->error == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_mpns_variable_set(v, (u_char *) ctx->error,
                               ngx_strlen(ctx->error));

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_variable_count(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char               *p;
    ngx_http_mpns_ctx_t  *ctx;

    ctx = ngx_http_mpns_variable_ctx(r, v, 1);
    if (ctx == NULL) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_http_mpns_variable_set(v, p,
                               ngx_sprintf(p, "%ui",
                                           *(ngx_uint_t *) ((char *) ctx
                                                            + data))
                               - p);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_variable_type(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                 *name;
    ngx_http_mpns_ctx_t       *ctx;
    ngx_http_mpns_loc_conf_t  *mlcf;

    ctx = ngx_http_mpns_variable_ctx(r, v, 0);
    if (ctx == NULL) {
        return NGX_OK;
    }

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);

    name = ctx->type ? mlcf->service->type_name(ctx->type) : NULL;

    if (name == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_mpns_variable_set(v, name->data, name->len);

    return NGX_OK;
}


/* "host:port" of the channel: which MPNS service the send went to */

static ngx_int_t
ngx_http_mpns_variable_host(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char               *p, *last, *host;
    ngx_http_mpns_ctx_t  *ctx;

    ctx = ngx_http_mpns_variable_ctx(r, v, 0);
    if (ctx == NULL) {
        return NGX_OK;
    }

    p = ctx->channel.data;
    last = p + ctx->channel.len;

    host = (p == NULL) ? NULL : ngx_strlcasestrn(p, last, (u_char *) "://",
                                                 3 - 1);

    if (host == NULL || ctx->batch) {
        v->not_found = 1;
        return NGX_OK;
    }

    host += 3;

    for (p = host; p < last && *p != '/' && *p != '?'; p++) {
        /* void */
    }

    ngx_http_mpns_variable_set(v, host, p - host);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_variable_id(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_mpns_ctx_t  *ctx;

    ctx = ngx_http_mpns_variable_ctx(r, v, 0);
    if (ctx == NULL) {
        return NGX_OK;
    }

    if (ctx->id[0] == '\0') {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_http_mpns_variable_set(v, ctx->id, NGX_HTTP_MPNS_ID_LEN);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_variable_version(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    v->len = sizeof(NGX_HTTP_MPNS_VERSION) - 1;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = (u_char *) NGX_HTTP_MPNS_VERSION;

    return NGX_OK;
}


/* the request's ctx, if it has one (and a finished send, if "done") */

static ngx_http_mpns_ctx_t *
ngx_http_mpns_variable_ctx(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, ngx_uint_t done)
{
    ngx_http_mpns_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_mpns_module);

    if (ctx == NULL || (done && !ctx->done)) {
        v->not_found = 1;
        return NULL;
    }

    return ctx;
}


static void
ngx_http_mpns_variable_set(ngx_http_variable_value_t *v, u_char *data,
    size_t len)
{
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = data;
}
