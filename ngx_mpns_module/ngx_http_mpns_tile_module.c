
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_md5.h>
#include "ngx_http_mpns_tile.h"


#define NGX_HTTP_MPNS_TILE_FONT                                               \
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"

/* the default when no background is given: transparent, the accent shows */
#define NGX_HTTP_MPNS_TILE_BACKGROUND   0x00000000
#define NGX_HTTP_MPNS_TILE_FOREGROUND   0xffffffff

#define NGX_HTTP_MPNS_TILE_MAX_COUNT    99


/* the fields, in the order they are checked */

#define NGX_HTTP_MPNS_TILE_SIZE         0
#define NGX_HTTP_MPNS_TILE_BG           1
#define NGX_HTTP_MPNS_TILE_FG           2
#define NGX_HTTP_MPNS_TILE_COUNT        3
#define NGX_HTTP_MPNS_TILE_TITLE        4
#define NGX_HTTP_MPNS_TILE_LINE1        5
#define NGX_HTTP_MPNS_TILE_NFIELDS      8


typedef struct {
    ngx_uint_t                  index;
    ngx_http_complex_value_t    value;
} ngx_http_mpns_tile_field_t;


typedef struct {
    ngx_flag_t                  enable;
    ngx_str_t                   font;
    size_t                      max_text;
    size_t                      max_size;
    time_t                      max_age;
    ngx_array_t                *fields;     /* ngx_http_mpns_tile_field_t */
    ngx_str_t                   cache_control;

    /* what else the bytes depend on: the layout, libgd, the font file */
    ngx_str_t                   salt;
} ngx_http_mpns_tile_loc_conf_t;


typedef struct {
    ngx_str_t                   name;
    ngx_uint_t                  width;
    ngx_uint_t                  height;
} ngx_http_mpns_tile_size_t;


static ngx_int_t ngx_http_mpns_tile_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_mpns_tile_values(ngx_http_request_t *r,
    ngx_http_mpns_tile_loc_conf_t *tlcf, ngx_str_t *values,
    ngx_uint_t *field);
static ngx_int_t ngx_http_mpns_tile_unescape(ngx_pool_t *pool,
    ngx_str_t *s);
static char *ngx_http_mpns_tile_parse(ngx_http_mpns_tile_loc_conf_t *tlcf,
    ngx_str_t *values, ngx_http_mpns_tile_t *tile, ngx_uint_t *field);
static ngx_int_t ngx_http_mpns_tile_color(ngx_str_t *value,
    uint32_t *argb);
static char *ngx_http_mpns_tile_check_text(ngx_str_t *text, size_t max);
static void ngx_http_mpns_tile_etag(ngx_http_mpns_tile_loc_conf_t *tlcf,
    ngx_http_mpns_tile_t *tile, u_char *etag);
static ngx_uint_t ngx_http_mpns_tile_matches(ngx_str_t *list,
    ngx_str_t *etag);
static ngx_int_t ngx_http_mpns_tile_headers(ngx_http_request_t *r,
    ngx_http_mpns_tile_loc_conf_t *tlcf, ngx_str_t *etag);
static ngx_int_t ngx_http_mpns_tile_refuse(ngx_http_request_t *r,
    ngx_uint_t status, char *error, ngx_str_t *field);
static ngx_int_t ngx_http_mpns_tile_send(ngx_http_request_t *r,
    u_char *data, size_t len);
static void *ngx_http_mpns_tile_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_mpns_tile_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_mpns_tile(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_mpns_tile_field(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void ngx_http_mpns_tile_exit_process(ngx_cycle_t *cycle);


static ngx_str_t  ngx_http_mpns_tile_names[] = {
    ngx_string("size"),
    ngx_string("background"),
    ngx_string("foreground"),
    ngx_string("count"),
    ngx_string("title"),
    ngx_string("line1"),
    ngx_string("line2"),
    ngx_string("line3")
};


static ngx_http_mpns_tile_size_t  ngx_http_mpns_tile_sizes[] = {
    { ngx_string("medium"), 336, 336 },
    { ngx_string("wide"), 691, 336 },
    { ngx_string("small"), 159, 159 },
    { ngx_string("wp7"), 173, 173 },
    { ngx_null_string, 0, 0 }
};


static ngx_str_t  ngx_http_mpns_tile_method = ngx_string("method");


static ngx_command_t  ngx_http_mpns_tile_commands[] = {

    { ngx_string("mpns_tile"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_mpns_tile,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_tile_field"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_mpns_tile_field,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("mpns_tile_font"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_tile_loc_conf_t, font),
      NULL },

    { ngx_string("mpns_tile_max_text"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_tile_loc_conf_t, max_text),
      NULL },

    { ngx_string("mpns_tile_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_tile_loc_conf_t, max_size),
      NULL },

    { ngx_string("mpns_tile_max_age"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_mpns_tile_loc_conf_t, max_age),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_mpns_tile_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_mpns_tile_create_loc_conf,    /* create location configuration */
    ngx_http_mpns_tile_merge_loc_conf      /* merge location configuration */
};


ngx_module_t  ngx_http_mpns_tile_module = {
    NGX_MODULE_V1,
    &ngx_http_mpns_tile_module_ctx,        /* module context */
    ngx_http_mpns_tile_commands,           /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_mpns_tile_exit_process,       /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_mpns_tile_handler(ngx_http_request_t *r)
{
    char                           *error;
    ngx_int_t                       rc;
    ngx_str_t                       values[NGX_HTTP_MPNS_TILE_NFIELDS];
    ngx_str_t                       png, tag;
    ngx_uint_t                      field;
    ngx_http_mpns_tile_t            tile;
    ngx_http_mpns_tile_loc_conf_t  *tlcf;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_mpns_tile_refuse(r, NGX_HTTP_NOT_ALLOWED,
                                         "method not allowed",
                                         &ngx_http_mpns_tile_method);
    }

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_tile_module);

    rc = ngx_http_mpns_tile_values(r, tlcf, values, &field);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_mpns_tile_refuse(r, NGX_HTTP_BAD_REQUEST,
                                         "duplicate field",
                                         &ngx_http_mpns_tile_names[field]);
    }

    error = ngx_http_mpns_tile_parse(tlcf, values, &tile, &field);

    if (error) {
        return ngx_http_mpns_tile_refuse(r, NGX_HTTP_BAD_REQUEST, error,
                                         &ngx_http_mpns_tile_names[field]);
    }

    /* the header outlives the handler: $sent_http_etag in access_log */

    tag.len = sizeof("W/\"\"") - 1 + 2 * 16;
    tag.data = ngx_pnalloc(r->pool, tag.len);
    if (tag.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_mpns_tile_etag(tlcf, &tile, tag.data);

    if (r->headers_in.if_none_match
        && ngx_http_mpns_tile_matches(&r->headers_in.if_none_match->value,
                                      &tag))
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "mpns tile %V not modified", &tag);

        r->headers_out.status = NGX_HTTP_NOT_MODIFIED;

        if (ngx_http_mpns_tile_headers(r, tlcf, &tag) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_send_header(r);
    }

    if (ngx_http_mpns_tile_render(&tile, tlcf->font.data, r->pool, &png,
                                  &error)
        != NGX_OK)
    {
        if (error) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "mpns tile not rendered: %s", error);
        }

        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "mpns tile %uix%ui rendered: %uz bytes, etag %V",
                   tile.width, tile.height, png.len, &tag);

    if (png.len > tlcf->max_size) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "mpns tile of %uz bytes is over mpns_tile_max_size %uz",
                      png.len, tlcf->max_size);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    ngx_str_set(&r->headers_out.content_type, "image/png");

    if (ngx_http_mpns_tile_headers(r, tlcf, &tag) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mpns_tile_send(r, png.data, png.len);
}


/*
 * The fields' values: from nginx.conf when not empty, else from the query
 * string (names that are not fields are ignored there).  NGX_DECLINED
 * when the query string names a field twice, *field says which.
 */

static ngx_int_t
ngx_http_mpns_tile_values(ngx_http_request_t *r,
    ngx_http_mpns_tile_loc_conf_t *tlcf, ngx_str_t *values, ngx_uint_t *field)
{
    u_char                      *p, *last, *amp, *eq;
    ngx_str_t                    name, value;
    ngx_uint_t                   i, n, seen, set;
    ngx_http_mpns_tile_field_t  *f;

    ngx_memzero(values, NGX_HTTP_MPNS_TILE_NFIELDS * sizeof(ngx_str_t));

    set = 0;

    if (tlcf->fields) {
        f = tlcf->fields->elts;

        for (i = 0; i < tlcf->fields->nelts; i++) {
            if (ngx_http_complex_value(r, &f[i].value, &values[f[i].index])
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            if (values[f[i].index].len) {
                set |= 1 << f[i].index;
            }
        }
    }

    seen = 0;

    p = r->args.data;
    last = p + r->args.len;

    while (p < last) {

        amp = ngx_strlchr(p, last, '&');
        if (amp == NULL) {
            amp = last;
        }

        eq = ngx_strlchr(p, amp, '=');
        if (eq == NULL) {
            eq = amp;
        }

        name.data = p;
        name.len = eq - p;
        value.data = (eq == amp) ? eq : eq + 1;
        value.len = amp - value.data;

        p = amp + 1;

        if (ngx_http_mpns_tile_unescape(r->pool, &name) != NGX_OK) {
            return NGX_ERROR;
        }

        for (n = 0; n < NGX_HTTP_MPNS_TILE_NFIELDS; n++) {
            if (name.len == ngx_http_mpns_tile_names[n].len
                && ngx_strncmp(name.data, ngx_http_mpns_tile_names[n].data,
                               name.len)
                   == 0)
            {
                break;
            }
        }

        if (n == NGX_HTTP_MPNS_TILE_NFIELDS) {
            continue;
        }

        if (seen & (1 << n)) {
            *field = n;
            return NGX_DECLINED;
        }

        seen |= 1 << n;

        if (set & (1 << n)) {
            continue;
        }

        if (ngx_http_mpns_tile_unescape(r->pool, &value) != NGX_OK) {
            return NGX_ERROR;
        }

        values[n] = value;
    }

    return NGX_OK;
}


/* "+" is a space in forms, then %XX */

static ngx_int_t
ngx_http_mpns_tile_unescape(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *src, *dst, *d, *last;

    last = s->data + s->len;

    if (ngx_strlchr(s->data, last, '%') == NULL
        && ngx_strlchr(s->data, last, '+') == NULL)
    {
        return NGX_OK;
    }

    dst = ngx_pnalloc(pool, s->len);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    for (src = s->data, d = dst; src < last; src++) {
        *d++ = (*src == '+') ? ' ' : *src;
    }

    src = dst;
    d = dst;
    ngx_unescape_uri(&d, &src, s->len, 0);

    s->data = dst;
    s->len = d - dst;

    return NGX_OK;
}


/* NULL, or the mistake in the field *field */

static char *
ngx_http_mpns_tile_parse(ngx_http_mpns_tile_loc_conf_t *tlcf,
    ngx_str_t *values, ngx_http_mpns_tile_t *tile, ngx_uint_t *field)
{
    char                       *error;
    ngx_int_t                   n;
    ngx_str_t                  *v;
    ngx_uint_t                  i;
    ngx_http_mpns_tile_size_t  *size;

    ngx_memzero(tile, sizeof(ngx_http_mpns_tile_t));

    /* without a size, the first one: medium */

    *field = NGX_HTTP_MPNS_TILE_SIZE;
    v = &values[NGX_HTTP_MPNS_TILE_SIZE];

    for (size = ngx_http_mpns_tile_sizes; size->name.len; size++) {
        if (v->len == 0
            || (v->len == size->name.len
                && ngx_strncmp(v->data, size->name.data, v->len) == 0))
        {
            break;
        }
    }

    if (size->name.len == 0) {
        return "invalid value";
    }

    tile->width = size->width;
    tile->height = size->height;

    *field = NGX_HTTP_MPNS_TILE_BG;
    tile->background = NGX_HTTP_MPNS_TILE_BACKGROUND;

    if (ngx_http_mpns_tile_color(&values[NGX_HTTP_MPNS_TILE_BG],
                                 &tile->background)
        != NGX_OK)
    {
        return "invalid value";
    }

    *field = NGX_HTTP_MPNS_TILE_FG;
    tile->foreground = NGX_HTTP_MPNS_TILE_FOREGROUND;

    if (ngx_http_mpns_tile_color(&values[NGX_HTTP_MPNS_TILE_FG],
                                 &tile->foreground)
        != NGX_OK)
    {
        return "invalid value";
    }

    *field = NGX_HTTP_MPNS_TILE_COUNT;
    v = &values[NGX_HTTP_MPNS_TILE_COUNT];

    if (v->len) {
        n = (v->len <= 2) ? ngx_atoi(v->data, v->len) : NGX_ERROR;

        if (n == NGX_ERROR || n > NGX_HTTP_MPNS_TILE_MAX_COUNT) {
            return "invalid value";
        }

        tile->count = n;
    }

    for (i = NGX_HTTP_MPNS_TILE_TITLE; i < NGX_HTTP_MPNS_TILE_NFIELDS; i++) {
        *field = i;

        error = ngx_http_mpns_tile_check_text(&values[i], tlcf->max_text);
        if (error) {
            return error;
        }
    }

    tile->title = values[NGX_HTTP_MPNS_TILE_TITLE];

    for (i = 0; i < NGX_HTTP_MPNS_TILE_LINES; i++) {
        tile->line[i] = values[NGX_HTTP_MPNS_TILE_LINE1 + i];
    }

    return NULL;
}


/* "#RRGGBB" or "#AARRGGBB" (the phone's notation), "#" optional */

static ngx_int_t
ngx_http_mpns_tile_color(ngx_str_t *value, uint32_t *argb)
{
    u_char     c, *p, *last;
    uint32_t   n;

    if (value->len == 0) {
        return NGX_OK;
    }

    p = value->data;
    last = p + value->len;

    if (*p == '#') {
        p++;
    }

    if (last - p != 6 && last - p != 8) {
        return NGX_ERROR;
    }

    /* six digits are opaque: 0xff shifted in front of them */

    n = (last - p == 6) ? 0xff : 0;

    while (p < last) {
        c = *p++;

        if (c >= '0' && c <= '9') {
            n = n << 4 | (c - '0');
            continue;
        }

        c |= 0x20;

        if (c >= 'a' && c <= 'f') {
            n = n << 4 | (c - 'a' + 10);
            continue;
        }

        return NGX_ERROR;
    }

    *argb = n;

    return NGX_OK;
}


/* at most max bytes of UTF-8, no control characters, no surrogates */

static char *
ngx_http_mpns_tile_check_text(ngx_str_t *text, size_t max)
{
    u_char    *p, *last;
    uint32_t   c;

    if (text->len > max) {
        return "value is too long";
    }

    p = text->data;
    last = p + text->len;

    while (p < last) {

        if (*p < 0x80) {
            c = *p++;

        } else if (*p < 0xf5) {
            c = ngx_utf8_decode(&p, last - p);

        } else {
            return "invalid character";
        }

        if (c < 0x20 || (c >= 0x7f && c < 0xa0)
            || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
        {
            return "invalid character";
        }
    }

    return NULL;
}


/*
 * The same fields, layout, libgd and font file draw the same pixels, so
 * the ETag is a hash of those and a match is answered without drawing.
 * It is weak: another zlib or libpng may write the pixels in other bytes.
 */

static void
ngx_http_mpns_tile_etag(ngx_http_mpns_tile_loc_conf_t *tlcf,
    ngx_http_mpns_tile_t *tile, u_char *etag)
{
    u_char      *p, buf[5 * NGX_INT_T_LEN], hash[16];
    ngx_md5_t    md5;
    ngx_str_t   *text;
    ngx_uint_t   i;

    ngx_md5_init(&md5);
    ngx_md5_update(&md5, tlcf->salt.data, tlcf->salt.len);

    p = ngx_sprintf(buf, "%ui %ui %uD %uD %ui", tile->width, tile->height,
                    tile->background, tile->foreground, tile->count);
    ngx_md5_update(&md5, buf, p - buf);

    /* each text as " LENGTH:BYTES", so that no two tiles hash the same */

    for (i = 0; i <= NGX_HTTP_MPNS_TILE_LINES; i++) {
        text = (i == 0) ? &tile->title : &tile->line[i - 1];

        p = ngx_sprintf(buf, " %uz:", text->len);
        ngx_md5_update(&md5, buf, p - buf);
        ngx_md5_update(&md5, text->data, text->len);
    }

    ngx_md5_final(hash, &md5);

    etag = ngx_cpymem(etag, "W/\"", 3);
    etag = ngx_hex_dump(etag, hash, 16);
    *etag = '"';
}


/* If-None-Match: "*" or a list of entity tags, compared weakly */

static ngx_uint_t
ngx_http_mpns_tile_matches(ngx_str_t *list, ngx_str_t *etag)
{
    u_char  *p, *last, *quote, *tag;
    size_t   len;

    /* the quoted part of our W/"..." */

    tag = etag->data + 2;
    len = etag->len - 2;

    p = list->data;
    last = p + list->len;

    while (p < last) {

        if (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
            continue;
        }

        if (*p == '*') {
            return 1;
        }

        if (last - p > 2 && p[0] == 'W' && p[1] == '/') {
            p += 2;
        }

        if (*p == '"') {
            quote = ngx_strlchr(p + 1, last, '"');

            if (quote == NULL) {
                return 0;
            }

            if ((size_t) (quote + 1 - p) == len
                && ngx_strncmp(p, tag, len) == 0)
            {
                return 1;
            }

            p = quote + 1;
        }

        while (p < last && *p != ',') {
            p++;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_mpns_tile_headers(ngx_http_request_t *r,
    ngx_http_mpns_tile_loc_conf_t *tlcf, ngx_str_t *etag)
{
    ngx_table_elt_t   *h, *cc;
#if (nginx_version < 1023000)
    ngx_table_elt_t  **ccp;
#endif

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "ETag");
    h->value = *etag;
    r->headers_out.etag = h;

    cc = ngx_list_push(&r->headers_out.headers);
    if (cc == NULL) {
        return NGX_ERROR;
    }

    cc->hash = 1;
    ngx_str_set(&cc->key, "Cache-Control");
    cc->value = tlcf->cache_control;

    /* registered where "expires" looks, so that it replaces this one */

#if (nginx_version >= 1023000)
    h->next = NULL;
    cc->next = NULL;
    r->headers_out.cache_control = cc;
#else
    if (ngx_array_init(&r->headers_out.cache_control, r->pool, 1,
                       sizeof(ngx_table_elt_t *))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ccp = ngx_array_push(&r->headers_out.cache_control);
    if (ccp == NULL) {
        return NGX_ERROR;
    }

    *ccp = cc;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_tile_refuse(ngx_http_request_t *r, ngx_uint_t status,
    char *error, ngx_str_t *field)
{
    u_char  *p, *buf;
    size_t   len;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "mpns request refused: %s, field \"%V\"", error, field);

    /* the errors and the field names need no JSON escaping */

    len = sizeof("{\"error\":\"\",\"field\":\"\"}\n") - 1
          + ngx_strlen(error) + field->len;

    buf = ngx_pnalloc(r->pool, len);
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(buf, "{\"error\":\"%s\",\"field\":\"%V\"}\n", error,
                    field);

    r->headers_out.status = status;
    ngx_str_set(&r->headers_out.content_type, "application/json");

    return ngx_http_mpns_tile_send(r, buf, p - buf);
}


static ngx_int_t
ngx_http_mpns_tile_send(ngx_http_request_t *r, u_char *data, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.content_length_n = len;
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = data;
    b->last = data + len;
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


static void *
ngx_http_mpns_tile_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_mpns_tile_loc_conf_t  *tlcf;

    tlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpns_tile_loc_conf_t));
    if (tlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     tlcf->enable = 0;
     *     tlcf->font = { 0, NULL };
     *     tlcf->salt = { 0, NULL };
     *     tlcf->cache_control = { 0, NULL };
     */

    tlcf->max_text = NGX_CONF_UNSET_SIZE;
    tlcf->max_size = NGX_CONF_UNSET_SIZE;
    tlcf->max_age = NGX_CONF_UNSET;
    tlcf->fields = NGX_CONF_UNSET_PTR;

    return tlcf;
}


static char *
ngx_http_mpns_tile_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_mpns_tile_loc_conf_t *prev = parent;
    ngx_http_mpns_tile_loc_conf_t *conf = child;

    char             *error;
    u_char           *p;
    const char       *library;
    ngx_file_info_t   fi;

    ngx_conf_merge_str_value(conf->font, prev->font, NGX_HTTP_MPNS_TILE_FONT);
    ngx_conf_merge_size_value(conf->max_text, prev->max_text, 256);
    ngx_conf_merge_size_value(conf->max_size, prev->max_size, 80 * 1024);
    ngx_conf_merge_sec_value(conf->max_age, prev->max_age, 3600);
    ngx_conf_merge_ptr_value(conf->fields, prev->fields, NULL);

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    if (ngx_conf_full_name(cf->cycle, &conf->font, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_file_info(conf->font.data, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_file_info_n " \"%s\" failed", conf->font.data);
        return NGX_CONF_ERROR;
    }

    /* the workers open the font afresh, as it is now */

    error = ngx_http_mpns_tile_font_test(conf->font.data);
    ngx_http_mpns_tile_font_release();

    if (error) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "mpns_tile_font \"%V\" cannot be used: %s",
                           &conf->font, error);
        return NGX_CONF_ERROR;
    }

    library = ngx_http_mpns_tile_library();

    conf->salt.len = sizeof(NGX_HTTP_MPNS_TILE_LAYOUT " gd/ ") - 1
                     + ngx_strlen(library) + conf->font.len
                     + 2 * NGX_OFF_T_LEN + 2;

    conf->salt.data = ngx_pnalloc(cf->pool, conf->salt.len);
    if (conf->salt.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_sprintf(conf->salt.data,
                    NGX_HTTP_MPNS_TILE_LAYOUT " gd/%s %V %O %T",
                    library, &conf->font, ngx_file_size(&fi),
                    ngx_file_mtime(&fi));

    conf->salt.len = p - conf->salt.data;

    conf->cache_control.data = ngx_pnalloc(cf->pool,
                                           sizeof("max-age=") + NGX_TIME_T_LEN);
    if (conf->cache_control.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_sprintf(conf->cache_control.data, "max-age=%T", conf->max_age);
    conf->cache_control.len = p - conf->cache_control.data;

    return NGX_CONF_OK;
}


static char *
ngx_http_mpns_tile(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_tile_loc_conf_t *tlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (tlcf->enable) {
        return "is duplicate";
    }

    tlcf->enable = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_mpns_tile_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_mpns_tile_field(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_tile_loc_conf_t *tlcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i, n;
    ngx_http_mpns_tile_field_t        *field;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    for (n = 0; n < NGX_HTTP_MPNS_TILE_NFIELDS; n++) {
        if (value[1].len == ngx_http_mpns_tile_names[n].len
            && ngx_strncmp(value[1].data, ngx_http_mpns_tile_names[n].data,
                           value[1].len)
               == 0)
        {
            break;
        }
    }

    if (n == NGX_HTTP_MPNS_TILE_NFIELDS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown mpns tile field \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (tlcf->fields == NGX_CONF_UNSET_PTR) {
        tlcf->fields = ngx_array_create(cf->pool, 4,
                                        sizeof(ngx_http_mpns_tile_field_t));
        if (tlcf->fields == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    field = tlcf->fields->elts;

    for (i = 0; i < tlcf->fields->nelts; i++) {
        if (field[i].index == n) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate mpns tile field \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    field = ngx_array_push(tlcf->fields);
    if (field == NULL) {
        return NGX_CONF_ERROR;
    }

    field->index = n;

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = &field->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_mpns_tile_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_mpns_tile_font_release();
}
