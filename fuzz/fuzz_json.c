
/*
 * Copyright (C) ngx_mpns_module authors
 */


/*
 * ngx_http_mpns_json_parse() against a plain JSON validator: a text is
 * accepted exactly when it is one object or array (RFC 4627; RFC 8259
 * values inside) nested at most NGX_HTTP_MPNS_JSON_MAX_DEPTH levels, and
 * a too deep one says so; the accepted tokens form a consistent tree;
 * every string unescapes into no more bytes than it has.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_mpns_json.h"
#include "fuzz.h"


typedef struct {
    u_char                   *p;
    u_char                   *last;
    ngx_uint_t                depth;
    ngx_uint_t                max_depth;
} ngx_http_mpns_fuzz_ref_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ngx_int_t ngx_http_mpns_fuzz_ref_value(ngx_http_mpns_fuzz_ref_t *ref);
static ngx_int_t ngx_http_mpns_fuzz_ref_string(ngx_http_mpns_fuzz_ref_t *ref);
static ngx_int_t ngx_http_mpns_fuzz_ref_number(ngx_http_mpns_fuzz_ref_t *ref);
static void ngx_http_mpns_fuzz_ref_space(ngx_http_mpns_fuzz_ref_t *ref);
static ngx_uint_t ngx_http_mpns_fuzz_tree(ngx_http_mpns_json_t *json,
    ngx_uint_t i);


/* deep enough to tell "too deep" from "invalid" for any input we get */
#define NGX_HTTP_MPNS_FUZZ_REF_DEPTH  10000


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_int_t                  rc, valid;
    ngx_str_t                  text, value;
    ngx_uint_t                 i;
    ngx_pool_t                *pool;
    ngx_http_mpns_json_t       json;
    ngx_http_mpns_fuzz_ref_t   ref;

    pool = ngx_http_mpns_fuzz_pool();

    text.data = ngx_http_mpns_fuzz_copy(pool, data, size);
    text.len = size;

    ngx_memzero(&json, sizeof(ngx_http_mpns_json_t));

    rc = ngx_http_mpns_json_parse(pool, &text, &json);

    ngx_http_mpns_fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    ref.p = text.data;
    ref.last = text.data + text.len;
    ref.depth = 0;
    ref.max_depth = 0;

    ngx_http_mpns_fuzz_ref_space(&ref);

    /* an object or an array at the top (RFC 4627) */

    if (ref.p < ref.last && (*ref.p == '{' || *ref.p == '[')) {
        valid = ngx_http_mpns_fuzz_ref_value(&ref);

    } else {
        valid = NGX_DECLINED;
    }

    ngx_http_mpns_fuzz_ref_space(&ref);

    if (valid == NGX_OK && ref.p != ref.last) {
        valid = NGX_DECLINED;
    }

    if (valid == NGX_OK && ref.max_depth <= NGX_HTTP_MPNS_JSON_MAX_DEPTH) {
        ngx_http_mpns_fuzz_assert(rc == NGX_OK);

    } else {
        ngx_http_mpns_fuzz_assert(rc == NGX_DECLINED);
        ngx_http_mpns_fuzz_assert(json.error != NULL);
    }

    if (valid == NGX_OK && ref.max_depth > NGX_HTTP_MPNS_JSON_MAX_DEPTH) {
        ngx_http_mpns_fuzz_assert(
            ngx_strcmp(json.error, "json nested too deeply") == 0);
    }

    if (rc == NGX_OK) {
        ngx_http_mpns_fuzz_assert(json.ntokens > 0);
        ngx_http_mpns_fuzz_assert(ngx_http_mpns_fuzz_tree(&json, 0)
                                  == json.ntokens);

        for (i = 0; i < json.ntokens; i++) {
            if (json.tokens[i].type != NGX_HTTP_MPNS_JSON_STRING) {
                continue;
            }

            if (ngx_http_mpns_json_string(pool, &json.tokens[i], &value)
                == NGX_OK)
            {
                ngx_http_mpns_fuzz_assert(value.len
                                          <= json.tokens[i].raw.len);
            }
        }
    }

    ngx_destroy_pool(pool);

    return 0;
}


/* walks the value at token i by sizes; returns the token after it */

static ngx_uint_t
ngx_http_mpns_fuzz_tree(ngx_http_mpns_json_t *json, ngx_uint_t i)
{
    u_char                    *start, *end;
    ngx_uint_t                 k, j;
    ngx_http_mpns_json_tok_t  *t;

    ngx_http_mpns_fuzz_assert(i < json->ntokens);

    t = &json->tokens[i];
    start = t->raw.data;
    end = t->raw.data + t->raw.len;
    j = i + 1;

    if (t->type == NGX_HTTP_MPNS_JSON_OBJECT
        || t->type == NGX_HTTP_MPNS_JSON_ARRAY)
    {
        for (k = 0; k < t->size; k++) {

            if (t->type == NGX_HTTP_MPNS_JSON_OBJECT) {
                ngx_http_mpns_fuzz_assert(j < json->ntokens);
                ngx_http_mpns_fuzz_assert(json->tokens[j].type
                                          == NGX_HTTP_MPNS_JSON_STRING);
                j++;
            }

            ngx_http_mpns_fuzz_assert(j < json->ntokens);
            ngx_http_mpns_fuzz_assert(json->tokens[j].raw.data > start
                                      && json->tokens[j].raw.data
                                         + json->tokens[j].raw.len < end);

            j = ngx_http_mpns_fuzz_tree(json, j);
        }
    }

    ngx_http_mpns_fuzz_assert(t->next == j);

    return j;
}


static ngx_int_t
ngx_http_mpns_fuzz_ref_value(ngx_http_mpns_fuzz_ref_t *ref)
{
    u_char      close;
    size_t      len;
    ngx_int_t   rc;
    ngx_uint_t  n;

    if (ref->p == ref->last) {
        return NGX_DECLINED;
    }

    switch (*ref->p) {

    case '{':
    case '[':
        close = (*ref->p == '{') ? '}' : ']';
        ref->p++;

        if (++ref->depth > NGX_HTTP_MPNS_FUZZ_REF_DEPTH) {
            return NGX_DECLINED;
        }

        if (ref->depth > ref->max_depth) {
            ref->max_depth = ref->depth;
        }

        ngx_http_mpns_fuzz_ref_space(ref);

        for (n = 0; /* void */; n++) {

            if (ref->p == ref->last) {
                return NGX_DECLINED;
            }

            if (*ref->p == close) {
                if (n > 0) {
                    /* "[1,]" */
                    return NGX_DECLINED;
                }

                break;
            }

            if (close == '}') {
                if (*ref->p != '"'
                    || ngx_http_mpns_fuzz_ref_string(ref) != NGX_OK)
                {
                    return NGX_DECLINED;
                }

                ngx_http_mpns_fuzz_ref_space(ref);

                if (ref->p == ref->last || *ref->p++ != ':') {
                    return NGX_DECLINED;
                }

                ngx_http_mpns_fuzz_ref_space(ref);
            }

            rc = ngx_http_mpns_fuzz_ref_value(ref);
            if (rc != NGX_OK) {
                return rc;
            }

            ngx_http_mpns_fuzz_ref_space(ref);

            if (ref->p == ref->last) {
                return NGX_DECLINED;
            }

            if (*ref->p == close) {
                break;
            }

            if (*ref->p++ != ',') {
                return NGX_DECLINED;
            }

            ngx_http_mpns_fuzz_ref_space(ref);

            if (ref->p < ref->last && *ref->p == close) {
                return NGX_DECLINED;
            }
        }

        ref->p++;
        ref->depth--;

        return NGX_OK;

    case '"':
        return ngx_http_mpns_fuzz_ref_string(ref);

    case 't':
    case 'f':
    case 'n':
        len = ref->last - ref->p;

        if (len >= 4 && ngx_strncmp(ref->p, "true", 4) == 0) {
            ref->p += 4;
            return NGX_OK;
        }

        if (len >= 5 && ngx_strncmp(ref->p, "false", 5) == 0) {
            ref->p += 5;
            return NGX_OK;
        }

        if (len >= 4 && ngx_strncmp(ref->p, "null", 4) == 0) {
            ref->p += 4;
            return NGX_OK;
        }

        return NGX_DECLINED;

    default:
        return ngx_http_mpns_fuzz_ref_number(ref);
    }
}


/* a string; bytes from 0x80 are not checked, as JSON parsing does not */

static ngx_int_t
ngx_http_mpns_fuzz_ref_string(ngx_http_mpns_fuzz_ref_t *ref)
{
    ngx_uint_t  i;

    for (ref->p++; ref->p < ref->last; ref->p++) {

        if (*ref->p == '"') {
            ref->p++;
            return NGX_OK;
        }

        if (*ref->p < 0x20) {
            return NGX_DECLINED;
        }

        if (*ref->p != '\\') {
            continue;
        }

        if (++ref->p == ref->last) {
            return NGX_DECLINED;
        }

        switch (*ref->p) {
        case '"': case '\\': case '/': case 'b':
        case 'f': case 'n': case 'r': case 't':
            continue;

        case 'u':
            for (i = 0; i < 4; i++) {
                if (++ref->p == ref->last || !isxdigit(*ref->p)) {
                    return NGX_DECLINED;
                }
            }

            continue;

        default:
            return NGX_DECLINED;
        }
    }

    return NGX_DECLINED;
}


/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */

static ngx_int_t
ngx_http_mpns_fuzz_ref_number(ngx_http_mpns_fuzz_ref_t *ref)
{
    u_char  *p, *last;

    p = ref->p;
    last = ref->last;

    if (p < last && *p == '-') {
        p++;
    }

    if (p == last || !isdigit(*p)) {
        return NGX_DECLINED;
    }

    if (*p == '0') {
        p++;

    } else {
        while (p < last && isdigit(*p)) {
            p++;
        }
    }

    if (p < last && *p == '.') {
        if (++p == last || !isdigit(*p)) {
            return NGX_DECLINED;
        }

        while (p < last && isdigit(*p)) {
            p++;
        }
    }

    if (p < last && (*p == 'e' || *p == 'E')) {
        if (++p < last && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == last || !isdigit(*p)) {
            return NGX_DECLINED;
        }

        while (p < last && isdigit(*p)) {
            p++;
        }
    }

    ref->p = p;

    return NGX_OK;
}


static void
ngx_http_mpns_fuzz_ref_space(ngx_http_mpns_fuzz_ref_t *ref)
{
    while (ref->p < ref->last
           && (*ref->p == ' ' || *ref->p == '\t' || *ref->p == CR
               || *ref->p == LF))
    {
        ref->p++;
    }
}
