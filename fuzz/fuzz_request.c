
/*
 * Copyright (C) ngx_mpns_module authors
 */


/*
 * A request's fields as a query string, a form or a JSON body, for a
 * single send, a "channels" list or a broadcast (the first byte says
 * which), then the notification built from them and the HTTP request
 * that would carry it: a mistake is a 4xx with a text and a field, a
 * built payload stays within its limit.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"
#include "fuzz.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static u_char  ngx_http_mpns_fuzz_random[16] = "0123456789abcdef";


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                    max;
    ngx_int_t                 rc;
    ngx_str_t                 text, out;
    ngx_uint_t                format, mode;
    ngx_pool_t               *pool;
    ngx_http_mpns_spec_t      spec;
    ngx_http_mpns_error_t     err;
    ngx_http_mpns_target_t    target;
    ngx_http_mpns_message_t   msg;
    ngx_http_mpns_targets_t   targets, *tg;

    if (size == 0) {
        return 0;
    }

    /* bits 0-1: the format; bits 2-3: single, list, broadcast */

    format = data[0] & 0x03;
    mode = (data[0] >> 2) & 0x03;
    max = (data[0] & 0x10) ? 1024 : 65536;

    if (format > NGX_HTTP_MPNS_JSON_BODY) {
        format = NGX_HTTP_MPNS_JSON_BODY;
    }

    pool = ngx_http_mpns_fuzz_pool();

    text.data = ngx_http_mpns_fuzz_copy(pool, data + 1, size - 1);
    text.len = size - 1;

    ngx_memzero(&spec, sizeof(ngx_http_mpns_spec_t));
    ngx_memzero(&targets, sizeof(ngx_http_mpns_targets_t));
    ngx_memzero(&err, sizeof(ngx_http_mpns_error_t));

    tg = (mode == 0) ? NULL : &targets;
    targets.broadcast = (mode >= 2);

    rc = ngx_http_mpns_request_parse(pool, &ngx_http_mpns_service_mpns,
                                     &text, format, &spec, tg, &err);

    ngx_http_mpns_fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    /* a JSON key "" or a form name "%" is an unknown field "" */

    if (rc == NGX_DECLINED) {
        ngx_http_mpns_fuzz_assert(err.text != NULL);
        ngx_http_mpns_fuzz_assert(err.status >= 400 && err.status < 500);
        ngx_http_mpns_fuzz_assert(err.field.len > 0
                                  || ngx_strcmp(err.text, "unknown field")
                                     == 0);
        goto done;
    }

    spec.random = ngx_http_mpns_fuzz_random;

    ngx_memzero(&msg, sizeof(ngx_http_mpns_message_t));

    rc = ngx_http_mpns_message_build(pool, &spec, max, &msg, &err);

    ngx_http_mpns_fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    if (rc == NGX_DECLINED) {
        ngx_http_mpns_fuzz_assert(err.text != NULL);
        ngx_http_mpns_fuzz_assert(err.status >= 400 && err.status < 500);
        ngx_http_mpns_fuzz_assert(err.field.len > 0);
        goto done;
    }

    ngx_http_mpns_fuzz_assert(msg.message_id.len == 36);

    if (msg.type == NGX_HTTP_MPNS_CALLBACK) {
        ngx_http_mpns_fuzz_assert(msg.body.len <= NGX_HTTP_MPNS_MAX_CALLBACK);

    } else {
        ngx_http_mpns_fuzz_assert(msg.body.len <= max);
    }

    if (msg.content_type.len) {
        ngx_http_mpns_fuzz_assert(msg.content_type.len
                                  <= NGX_HTTP_MPNS_MAX_CONTENT_TYPE);
    }

    ngx_str_set(&target.host, "127.0.0.1");
    ngx_str_set(&target.uri, "/throttledthirdparty/01.00/AAF");

    rc = ngx_http_mpns_message_request(pool, &msg, &target, &out);

    ngx_http_mpns_fuzz_assert(rc == NGX_OK);
    ngx_http_mpns_fuzz_assert(out.len > msg.body.len);

done:

    ngx_destroy_pool(pool);

    return 0;
}
