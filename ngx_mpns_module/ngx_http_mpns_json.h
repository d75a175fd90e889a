
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_JSON_H_INCLUDED_
#define _NGX_HTTP_MPNS_JSON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_mpns.h"


#define NGX_HTTP_MPNS_JSON_OBJECT       1
#define NGX_HTTP_MPNS_JSON_ARRAY        2
#define NGX_HTTP_MPNS_JSON_STRING       3
#define NGX_HTTP_MPNS_JSON_PRIMITIVE    4

/* no request or state line needs more than a few levels */
#define NGX_HTTP_MPNS_JSON_MAX_DEPTH    32

#define NGX_HTTP_MPNS_UTF8_INVALID      0xffffffff

/* the most ngx_http_mpns_json_sent() writes, with a key of 15 bytes */
#define NGX_HTTP_MPNS_JSON_SENT_LEN                                          \
    (sizeof(",\"\":{\"outcome\":\"\",\"status\":}") - 1 + 15 + 32             \
     + NGX_INT_T_LEN)


/* a parsed value; strings are raw, between the quotes, not unescaped */
typedef struct {
    ngx_uint_t                     type;
    ngx_str_t                      raw;
    ngx_uint_t                     size;     /* elements or members */
    ngx_uint_t                     next;     /* first token after it */
} ngx_http_mpns_json_tok_t;


typedef struct {
    ngx_http_mpns_json_tok_t      *tokens;
    ngx_uint_t                     ntokens;
    const char                    *error;    /* why parse declined */
} ngx_http_mpns_json_t;


ngx_int_t ngx_http_mpns_json_parse(ngx_pool_t *pool, ngx_str_t *text,
    ngx_http_mpns_json_t *json);
ngx_int_t ngx_http_mpns_json_string(ngx_pool_t *pool,
    ngx_http_mpns_json_tok_t *tok, ngx_str_t *value);

uint32_t ngx_http_mpns_json_utf8(u_char **p, u_char *last);
ngx_int_t ngx_http_mpns_json_valid_name(ngx_str_t *s);

size_t ngx_http_mpns_json_str_len(ngx_str_t *s);
u_char *ngx_http_mpns_json_str(u_char *p, ngx_str_t *s);

/* ,"KEY":{"outcome":"OUTCOME","status":STATUS}, status 0: null */
u_char *ngx_http_mpns_json_sent(u_char *p, char *key, ngx_str_t *outcome,
    ngx_uint_t status);


#endif /* _NGX_HTTP_MPNS_JSON_H_INCLUDED_ */
