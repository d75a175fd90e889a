
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_mpns_json.h"

/* jsmn's functions become static to this file */
#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>


static ngx_int_t ngx_http_mpns_json_hex(u_char *p, ngx_uint_t *ch);


ngx_int_t
ngx_http_mpns_json_parse(ngx_pool_t *pool, ngx_str_t *text,
    ngx_http_mpns_json_t *json)
{
    int                        n;
    size_t                     end;
    ngx_uint_t                 i, j;
    jsmntok_t                 *t;
    jsmn_parser                parser;
    ngx_http_mpns_json_tok_t  *tok;

    jsmn_init(&parser);

    n = jsmn_parse(&parser, (char *) text->data, text->len, NULL, 0);
    if (n <= 0) {
        return NGX_DECLINED;
    }

    t = ngx_palloc(pool, n * sizeof(jsmntok_t));
    if (t == NULL) {
        return NGX_ERROR;
    }

    jsmn_init(&parser);

    if (jsmn_parse(&parser, (char *) text->data, text->len, t, n) != n) {
        return NGX_DECLINED;
    }

    /* one value, nothing but white space after it */

    for (end = t[0].end; end < text->len; end++) {
        switch (text->data[end]) {
        case ' ': case '\t': case CR: case LF:
            continue;
        default:
            return NGX_DECLINED;
        }
    }

    tok = ngx_palloc(pool, n * sizeof(ngx_http_mpns_json_tok_t));
    if (tok == NULL) {
        return NGX_ERROR;
    }

    /*
     * tokens come in document order, so the value after token i is the
     * first one starting at or after its end; walking backwards lets each
     * step jump over whole subtrees already measured
     */

    for (i = n; i-- > 0; /* void */) {

        switch (t[i].type) {
        case JSMN_OBJECT:
            tok[i].type = NGX_HTTP_MPNS_JSON_OBJECT;
            break;
        case JSMN_ARRAY:
            tok[i].type = NGX_HTTP_MPNS_JSON_ARRAY;
            break;
        case JSMN_STRING:
            tok[i].type = NGX_HTTP_MPNS_JSON_STRING;
            break;
        default:
            tok[i].type = NGX_HTTP_MPNS_JSON_PRIMITIVE;
            break;
        }

        tok[i].raw.data = text->data + t[i].start;
        tok[i].raw.len = t[i].end - t[i].start;
        tok[i].size = t[i].size;

        j = i + 1;

        while (j < (ngx_uint_t) n && t[j].start < t[i].end) {
            j = tok[j].next;
        }

        tok[i].next = j;
    }

    json->tokens = tok;
    json->ntokens = n;

    return NGX_OK;
}


ngx_int_t
ngx_http_mpns_json_string(ngx_pool_t *pool, ngx_http_mpns_json_tok_t *tok,
    ngx_str_t *value)
{
    u_char      *p, *last, *dst;
    ngx_uint_t   ch, lo;

    p = tok->raw.data;
    last = p + tok->raw.len;

    if (tok->type != NGX_HTTP_MPNS_JSON_STRING) {
        return NGX_DECLINED;
    }

    for (dst = p; dst < last; dst++) {
        if (*dst < 0x20) {
            return NGX_DECLINED;
        }

        if (*dst == '\\') {
            break;
        }
    }

    if (dst == last) {
        *value = tok->raw;
        return NGX_OK;
    }

    /* unescaping never makes a string longer */

    value->data = ngx_pnalloc(pool, tok->raw.len);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    dst = value->data;

    while (p < last) {

        if (*p < 0x20) {
            return NGX_DECLINED;
        }

        if (*p != '\\') {
            *dst++ = *p++;
            continue;
        }

        if (++p == last) {
            return NGX_DECLINED;
        }

        switch (*p++) {
        case '"':  *dst++ = '"';  continue;
        case '\\': *dst++ = '\\'; continue;
        case '/':  *dst++ = '/';  continue;
        case 'b':  *dst++ = '\b'; continue;
        case 'f':  *dst++ = '\f'; continue;
        case 'n':  *dst++ = LF;   continue;
        case 'r':  *dst++ = CR;   continue;
        case 't':  *dst++ = '\t'; continue;
        case 'u':  break;
        default:   return NGX_DECLINED;
        }

        if (last - p < 4 || ngx_http_mpns_json_hex(p, &ch) != NGX_OK) {
            return NGX_DECLINED;
        }

        p += 4;

        if (ch >= 0xdc00 && ch <= 0xdfff) {
            return NGX_DECLINED;
        }

        if (ch >= 0xd800 && ch <= 0xdbff) {

            if (last - p < 6 || p[0] != '\\' || p[1] != 'u'
                || ngx_http_mpns_json_hex(p + 2, &lo) != NGX_OK
                || lo < 0xdc00 || lo > 0xdfff)
            {
                return NGX_DECLINED;
            }

            p += 6;
            ch = 0x10000 + ((ch - 0xd800) << 10) + (lo - 0xdc00);
        }

        if (ch < 0x80) {
            *dst++ = (u_char) ch;

        } else if (ch < 0x800) {
            *dst++ = (u_char) (0xc0 | (ch >> 6));
            *dst++ = (u_char) (0x80 | (ch & 0x3f));

        } else if (ch < 0x10000) {
            *dst++ = (u_char) (0xe0 | (ch >> 12));
            *dst++ = (u_char) (0x80 | ((ch >> 6) & 0x3f));
            *dst++ = (u_char) (0x80 | (ch & 0x3f));

        } else {
            *dst++ = (u_char) (0xf0 | (ch >> 18));
            *dst++ = (u_char) (0x80 | ((ch >> 12) & 0x3f));
            *dst++ = (u_char) (0x80 | ((ch >> 6) & 0x3f));
            *dst++ = (u_char) (0x80 | (ch & 0x3f));
        }
    }

    value->len = dst - value->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_json_hex(u_char *p, ngx_uint_t *ch)
{
    u_char      c;
    ngx_uint_t  i, n;

    n = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            n = n * 16 + (c - '0');
            continue;
        }

        c |= 0x20;

        if (c >= 'a' && c <= 'f') {
            n = n * 16 + (c - 'a' + 10);
            continue;
        }

        return NGX_ERROR;
    }

    *ch = n;

    return NGX_OK;
}


size_t
ngx_http_mpns_json_str_len(ngx_str_t *s)
{
    return sizeof("\"\"") - 1 + s->len
           + ngx_escape_json(NULL, s->data, s->len);
}


u_char *
ngx_http_mpns_json_str(u_char *p, ngx_str_t *s)
{
    *p++ = '"';
    p = (u_char *) ngx_escape_json(p, s->data, s->len);
    *p++ = '"';

    return p;
}
