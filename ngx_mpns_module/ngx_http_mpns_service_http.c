
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_mpns_module.h"


/*
 * A plain HTTP POST, for the results the outbox reports to the
 * application (mpns_result_callback): no push-service rules, any 2xx is
 * taken, anything else is tried again by the outbox.
 */


static ngx_int_t ngx_http_mpns_http_create_request(ngx_pool_t *pool,
    ngx_http_mpns_message_t *msg, ngx_http_mpns_target_t *target,
    ngx_str_t *out);
static ngx_uint_t ngx_http_mpns_http_classify(ngx_http_mpns_response_t *resp);
static ngx_uint_t ngx_http_mpns_http_retryable(ngx_uint_t outcome);


ngx_http_mpns_service_t  ngx_http_mpns_service_http = {
    ngx_string("http"),
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    ngx_http_mpns_http_create_request,
    NULL,
    NULL,
    0,
    ngx_http_mpns_http_classify,
    ngx_http_mpns_http_retryable,
    NULL,
    NULL
};


static ngx_int_t
ngx_http_mpns_http_create_request(ngx_pool_t *pool,
    ngx_http_mpns_message_t *msg, ngx_http_mpns_target_t *target,
    ngx_str_t *out)
{
    u_char  *p;
    size_t   len;

    len = sizeof("POST  HTTP/1.1" CRLF "Host: " CRLF "Content-Type: " CRLF
                 "Content-Length: " CRLF "Connection: keep-alive" CRLF CRLF)
          - 1 + target->uri.len + target->host.len + msg->content_type.len
          + NGX_SIZE_T_LEN + msg->body.len;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;

    p = ngx_sprintf(p, "POST %V HTTP/1.1" CRLF "Host: %V" CRLF
                       "Content-Type: %V" CRLF "Content-Length: %uz" CRLF
                       "Connection: keep-alive" CRLF CRLF,
                    &target->uri, &target->host, &msg->content_type,
                    msg->body.len);
    p = ngx_cpymem(p, msg->body.data, msg->body.len);

    out->len = p - out->data;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_mpns_http_classify(ngx_http_mpns_response_t *resp)
{
    if (resp->status >= 200 && resp->status < 300) {
        return NGX_HTTP_MPNS_DELIVERED;
    }

    return NGX_HTTP_MPNS_UNAVAILABLE;
}


static ngx_uint_t
ngx_http_mpns_http_retryable(ngx_uint_t outcome)
{
    /* the outbox tries a callback again on its own schedule */
    return 0;
}
