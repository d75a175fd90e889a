
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"


/* small output helpers shared by the locations' handlers */


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


ngx_int_t
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


/* a number in decimal: what ngx_sprintf("%ui") prints, without a format */

u_char *
ngx_http_mpns_uint(u_char *p, ngx_uint_t n)
{
    u_char   *q, temp[NGX_INT_T_LEN];

    q = temp + NGX_INT_T_LEN;

    do {
        *--q = (u_char) (n % 10 + '0');
        n /= 10;
    } while (n);

    return ngx_cpymem(p, q, temp + NGX_INT_T_LEN - q);
}
