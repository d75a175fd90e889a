
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_mpns_json.h"

/*
 * jsmn's functions become static to this file; with parent links a
 * closing bracket climbs from the last token to its container (at most
 * the nesting depth) rather than searching every token before it
 */
#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>


/* the tokens a body is parsed into first: a send's body has a dozen */
#define NGX_HTTP_MPNS_JSON_TOKENS       32


static ngx_int_t ngx_http_mpns_json_depth(ngx_str_t *text);
static ngx_int_t ngx_http_mpns_json_check(ngx_str_t *text, jsmntok_t *t,
    ngx_http_mpns_json_tok_t *tok, ngx_uint_t n);
static u_char *ngx_http_mpns_json_value(u_char *start, u_char *p,
    jsmntok_t *t);
static ngx_int_t ngx_http_mpns_json_primitive(u_char *p, u_char *last);
static u_char *ngx_http_mpns_json_space(u_char *p, u_char *last);
static ngx_int_t ngx_http_mpns_json_hex(u_char *p, ngx_uint_t *ch);


ngx_int_t
ngx_http_mpns_json_parse(ngx_pool_t *pool, ngx_str_t *text,
    ngx_http_mpns_json_t *json)
{
    int                        n;
    u_char                    *first, *last;
    ngx_uint_t                 i, j;
    jsmntok_t                 *t;
    jsmn_parser                parser;
    ngx_http_mpns_json_tok_t  *tok;

    json->error = "invalid json";

    if (text->len > NGX_MAX_INT32_VALUE) {
        return NGX_DECLINED;
    }

    if (ngx_http_mpns_json_depth(text) != NGX_OK) {
        json->error = "json nested too deeply";
        return NGX_DECLINED;
    }

    /*
     * one pass into a few tokens; a larger text is counted first and
     * parsed again into as many as it has
     */

    t = ngx_palloc(pool, NGX_HTTP_MPNS_JSON_TOKENS * sizeof(jsmntok_t));
    if (t == NULL) {
        return NGX_ERROR;
    }

    jsmn_init(&parser);

    n = jsmn_parse(&parser, (char *) text->data, text->len, t,
                   NGX_HTTP_MPNS_JSON_TOKENS);

    if (n == JSMN_ERROR_NOMEM) {
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

    } else if (n <= 0) {
        return NGX_DECLINED;
    }

    /*
     * one object or array, as RFC 4627 has it (jsmn cannot end the text
     * with a number in strict mode), nothing but white space around it:
     * jsmn skips a "," or ":" with no container
     */

    if (t[0].type != JSMN_OBJECT && t[0].type != JSMN_ARRAY) {
        return NGX_DECLINED;
    }

    first = text->data + t[0].start;
    last = text->data + text->len;

    if (ngx_http_mpns_json_space(text->data, first) != first
        || ngx_http_mpns_json_space(text->data + t[0].end, last) != last)
    {
        return NGX_DECLINED;
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

    if (ngx_http_mpns_json_check(text, t, tok, n) != NGX_OK) {
        return NGX_DECLINED;
    }

    json->tokens = tok;
    json->ntokens = n;

    return NGX_OK;
}


/*
 * jsmn's work for a closing bracket grows with the depth, so the depth is
 * bounded first, in one pass that skips strings
 */

static ngx_int_t
ngx_http_mpns_json_depth(ngx_str_t *text)
{
    u_char      *p, *last;
    ngx_uint_t   depth;

    depth = 0;
    last = text->data + text->len;

    for (p = text->data; p < last; p++) {

        switch (*p) {

        case '[': case '{':
            if (++depth > NGX_HTTP_MPNS_JSON_MAX_DEPTH) {
                return NGX_DECLINED;
            }

            break;

        case ']': case '}':
            if (depth) {
                depth--;
            }

            break;

        case '"':
            for (p++; p < last && *p != '"'; p++) {
                if (*p == '\\' && p + 1 < last) {
                    p++;
                }
            }

            if (p == last) {
                return NGX_OK;
            }

            break;
        }
    }

    return NGX_OK;
}


/*
 * jsmn finds the values but tolerates what JSON does not: missing or
 * extra separators, trailing commas, "01", raw control characters in
 * strings.  The text between the tokens is checked here.
 */

static ngx_int_t
ngx_http_mpns_json_check(ngx_str_t *text, jsmntok_t *t,
    ngx_http_mpns_json_tok_t *tok, ngx_uint_t n)
{
    u_char      *p, *last, *start;
    ngx_uint_t   i, j, k;

    start = text->data;

    for (i = 0; i < n; i++) {

        last = start + t[i].end;

        if (t[i].type == JSMN_PRIMITIVE) {
            if (ngx_http_mpns_json_primitive(start + t[i].start, last)
                != NGX_OK)
            {
                return NGX_DECLINED;
            }

            continue;
        }

        if (t[i].type == JSMN_STRING) {
            for (p = start + t[i].start; p < last; p++) {
                if (*p < 0x20) {
                    return NGX_DECLINED;
                }
            }

            continue;
        }

        /* an object or an array: "{" members "}", "[" elements "]" */

        p = start + t[i].start + 1;
        last--;
        j = i + 1;

        for (k = 0; k < (ngx_uint_t) t[i].size; k++) {

            p = ngx_http_mpns_json_space(p, last);

            if (k > 0) {
                if (*p++ != ',') {
                    return NGX_DECLINED;
                }

                p = ngx_http_mpns_json_space(p, last);
            }

            if (t[i].type == JSMN_OBJECT) {
                if (j == n || t[j].type != JSMN_STRING) {
                    return NGX_DECLINED;
                }

                p = ngx_http_mpns_json_value(start, p, &t[j]);
                if (p == NULL) {
                    return NGX_DECLINED;
                }

                p = ngx_http_mpns_json_space(p, last);

                if (*p++ != ':') {
                    return NGX_DECLINED;
                }

                p = ngx_http_mpns_json_space(p, last);
                j++;
            }

            /* jsmn counts a key as a member even without its value */

            if (j == n) {
                return NGX_DECLINED;
            }

            p = ngx_http_mpns_json_value(start, p, &t[j]);
            if (p == NULL) {
                return NGX_DECLINED;
            }

            j = tok[j].next;
        }

        if (ngx_http_mpns_json_space(p, last) != last) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* the value must start at p; returns the position after it */

static u_char *
ngx_http_mpns_json_value(u_char *start, u_char *p, jsmntok_t *t)
{
    size_t  quote;

    quote = (t->type == JSMN_STRING);

    if (p != start + t->start - quote) {
        return NULL;
    }

    return start + t->end + quote;
}


/* true, false, null, or -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */

static ngx_int_t
ngx_http_mpns_json_primitive(u_char *p, u_char *last)
{
    size_t  len;

    len = last - p;

    if ((len == 4 && ngx_strncmp(p, "true", 4) == 0)
        || (len == 5 && ngx_strncmp(p, "false", 5) == 0)
        || (len == 4 && ngx_strncmp(p, "null", 4) == 0))
    {
        return NGX_OK;
    }

    if (p < last && *p == '-') {
        p++;
    }

    if (p == last || *p < '0' || *p > '9') {
        return NGX_DECLINED;
    }

    if (*p++ != '0') {
        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < last && *p == '.') {
        if (++p == last || *p < '0' || *p > '9') {
            return NGX_DECLINED;
        }

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < last && (*p == 'e' || *p == 'E')) {
        if (++p < last && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == last || *p < '0' || *p > '9') {
            return NGX_DECLINED;
        }

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    return (p == last) ? NGX_OK : NGX_DECLINED;
}


static u_char *
ngx_http_mpns_json_space(u_char *p, u_char *last)
{
    while (p < last
           && (*p == ' ' || *p == '\t' || *p == CR || *p == LF))
    {
        p++;
    }

    return p;
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


/*
 * the character at *p, moving *p past it; NGX_HTTP_MPNS_UTF8_INVALID,
 * with *p anywhere, for a broken sequence, an overlong form, a surrogate
 * or a code point above U+10FFFF: JSON output escapes control characters
 * only, so text that goes out in JSON must be valid UTF-8 when it comes in
 */

uint32_t
ngx_http_mpns_json_utf8(u_char **p, u_char *last)
{
    u_char    *q;
    uint32_t   u;

    q = *p;

    if (*q < 0x80) {
        (*p)++;
        return *q;
    }

    /* ngx_utf8_decode() takes any of 0xf5-0xff as a leading byte */

    if (*q > 0xf4) {
        (*p)++;
        return NGX_HTTP_MPNS_UTF8_INVALID;
    }

    u = ngx_utf8_decode(p, last - q);

    if (u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
        return NGX_HTTP_MPNS_UTF8_INVALID;
    }

    /* ngx_utf8_decode() does not check the continuation bytes' tops */

    for (q++; q < *p; q++) {
        if ((*q & 0xc0) != 0x80) {
            return NGX_HTTP_MPNS_UTF8_INVALID;
        }
    }

    return u;
}


/* a name kept and echoed in JSON: UTF-8 without control characters */

ngx_int_t
ngx_http_mpns_json_valid_name(ngx_str_t *s)
{
    u_char    *p, *last;
    uint32_t   u;

    p = s->data;
    last = p + s->len;

    while (p < last) {

        u = ngx_http_mpns_json_utf8(&p, last);

        if (u < 0x20 || u == 0x7f || u == NGX_HTTP_MPNS_UTF8_INVALID) {
            return NGX_DECLINED;
        }
    }

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
    u_char  *src, *end, *start;

    /* what ngx_escape_json() escapes: control bytes, '"' and '\\' */

    static u_char  escape[256] = {
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0
    };

    src = s->data;
    end = src + s->len;

    *p++ = '"';

    /* most strings need no escaping: copied up to a byte that does */

    for (start = src; src < end && !escape[*src]; src++) {
        /* void */
    }

    p = ngx_cpymem(p, start, src - start);

    if (src < end) {
        p = (u_char *) ngx_escape_json(p, src, end - src);
    }

    *p++ = '"';

    return p;
}


u_char *
ngx_http_mpns_json_sent(u_char *p, char *key, ngx_str_t *outcome,
    ngx_uint_t status)
{
    p = ngx_sprintf(p, ",\"%s\":{\"outcome\":\"%V\",\"status\":", key,
                    outcome);

    if (status) {
        return ngx_sprintf(p, "%ui}", status);
    }

    return ngx_cpymem(p, "null}", sizeof("null}") - 1);
}
