
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"
#include "ngx_http_mpns_json.h"


#define NGX_HTTP_MPNS_BIT(i)            ((uint64_t) 1 << (i))


/* the bytes of a channel URL, see ngx_http_mpns_url_byte[] */
#define NGX_HTTP_MPNS_URL_INVALID       0    /* controls, space, 8-bit */
#define NGX_HTTP_MPNS_URL_OK            1
#define NGX_HTTP_MPNS_URL_END           2    /* "/", "?": the host ends */
#define NGX_HTTP_MPNS_URL_NOT_HOST      3    /* "@", "\\", "%" */
#define NGX_HTTP_MPNS_URL_FRAGMENT      4    /* "#" */


/* one source of field values: query, body or nginx.conf */
typedef struct {
    ngx_http_mpns_service_t       *service;
    ngx_http_mpns_spec_t          *spec;
    ngx_http_mpns_targets_t       *targets;   /* NULL: a single channel */
    ngx_http_mpns_error_t         *err;
    ngx_pool_t                    *pool;
    uint64_t                       seen;
    ngx_uint_t                     seen_targets;
    unsigned                       strict:1;
} ngx_http_mpns_source_t;


static ngx_int_t ngx_http_mpns_conf_values(ngx_http_request_t *r,
    ngx_http_mpns_loc_conf_t *mlcf, ngx_http_mpns_spec_t *conf,
    uint64_t *given, ngx_http_mpns_error_t *err);
static ngx_int_t ngx_http_mpns_parse_form(ngx_pool_t *pool, ngx_str_t *text,
    ngx_http_mpns_source_t *src);
static ngx_int_t ngx_http_mpns_parse_json(ngx_pool_t *pool, ngx_str_t *text,
    ngx_http_mpns_source_t *src);
static ngx_int_t ngx_http_mpns_set(ngx_http_mpns_source_t *src,
    ngx_str_t *name, ngx_str_t *value);
static ngx_int_t ngx_http_mpns_set_target(ngx_http_mpns_source_t *src,
    ngx_str_t *name, ngx_http_mpns_json_t *json,
    ngx_http_mpns_json_tok_t *v);
static ngx_int_t ngx_http_mpns_set_index(ngx_http_mpns_source_t *src,
    ngx_uint_t index, ngx_str_t *value);
static ngx_int_t ngx_http_mpns_clear(ngx_http_mpns_source_t *src,
    ngx_str_t *name);
static ngx_int_t ngx_http_mpns_clear_list(ngx_http_mpns_source_t *src,
    ngx_str_t *list);
static ngx_int_t ngx_http_mpns_authority(ngx_str_t *authority,
    in_port_t default_port, ngx_str_t *host, in_port_t *port);
static ngx_uint_t ngx_http_mpns_dotted_quad(u_char *p, u_char *last);
static ngx_int_t ngx_http_mpns_allowed(ngx_http_mpns_loc_conf_t *mlcf,
    ngx_str_t *host, ngx_log_t *log);
static ngx_uint_t ngx_http_mpns_port_allowed(ngx_array_t *ports,
    in_port_t port);
static ngx_int_t ngx_http_mpns_mistake(ngx_http_mpns_error_t *err,
    ngx_uint_t status, const char *text, ngx_str_t *field);


static ngx_str_t  ngx_http_mpns_body_field = ngx_string("body");
static ngx_str_t  ngx_http_mpns_channel_field = ngx_string("channel");
static ngx_str_t  ngx_http_mpns_clear_field = ngx_string("clear");
static ngx_str_t  ngx_http_mpns_channels_field = ngx_string("channels");


/*
 * "%" in a host is percent-encoding or an IPv6 zone, neither a host
 * name; "@" and "\\" would hide the host; a fragment is no part of a
 * channel
 */

static u_char  ngx_http_mpns_url_byte[256] = {
    /* 0x00 - 0x1f */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /*    !  "  #  $  %  &  '  (  )  *  +  ,  -  .  / */
    0, 1, 1, 4, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2,
    /* 0  1  2  3  4  5  6  7  8  9  :  ;  <  =  >  ? */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2,
    /* @  A - O */
    3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* P - Z                          [  \  ]  ^  _ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1, 1, 1,
    /* `  a - o */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* p - z                          {  |  }  ~  DEL */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0
    /* 0x80 - 0xff */
};


/* fields that choose recipients rather than fill the notification */
static ngx_str_t  ngx_http_mpns_target_names[] = {
    ngx_string("channels"),                /* mpns_send */
    ngx_string("user"),                    /* mpns_broadcast filters */
    ngx_string("tag"),
    ngx_string("os"),
    ngx_string("send_at"),                 /* when, for both */
    ngx_string("delay"),
    ngx_string("async"),
    ngx_string("every"),                   /* a recurring send */
    ngx_string("times"),
    ngx_string("until"),
    ngx_null_string
};


ngx_int_t
ngx_http_mpns_request_spec(ngx_http_request_t *r,
    ngx_http_mpns_loc_conf_t *mlcf, ngx_http_mpns_spec_t *spec,
    ngx_http_mpns_targets_t *targets, ngx_http_mpns_error_t *err)
{
    uint64_t                     bit, given;
    ngx_int_t                    rc;
    ngx_str_t                    body, *type;
    ngx_uint_t                   i, passthrough, format;
    ngx_table_elt_t             *ct;
    ngx_http_mpns_spec_t         conf;

    ngx_memzero(spec, sizeof(ngx_http_mpns_spec_t));

    if (r->args.len) {
        rc = ngx_http_mpns_request_parse(r->pool, mlcf->service, &r->args,
                                         NGX_HTTP_MPNS_QUERY_STRING, spec,
                                         targets, err);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    rc = ngx_http_mpns_conf_values(r, mlcf, &conf, &given, err);
    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_mpns_request_body(r, mlcf->max_body_size, &body);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        /* a chunked body is measured only now */
        return ngx_http_mpns_mistake(err, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                     "request body too large",
                                     &ngx_http_mpns_body_field);
    }

    /*
     * a raw notification whose channel does not come from the body
     * takes the body itself as its payload, byte for byte
     */

    type = conf.values[NGX_HTTP_MPNS_F_TYPE].data
           ? &conf.values[NGX_HTTP_MPNS_F_TYPE]
           : &spec->values[NGX_HTTP_MPNS_F_TYPE];

    passthrough = body.len
                  && mlcf->service->type(type) == NGX_HTTP_MPNS_RAW
                  && (conf.values[NGX_HTTP_MPNS_F_CHANNEL].data
                      || spec->values[NGX_HTTP_MPNS_F_CHANNEL].data);

    ct = r->headers_in.content_type;

    if (passthrough) {
        spec->values[NGX_HTTP_MPNS_F_PAYLOAD] = body;

        if (ct) {
            spec->content_type = ct->value;
        }

    } else if (body.len) {

        if (ngx_http_mpns_request_is_type(ct, "application/json",
                                  sizeof("application/json") - 1))
        {
            format = NGX_HTTP_MPNS_JSON_BODY;

        } else if (ngx_http_mpns_request_is_type(ct,
                                      "application/x-www-form-urlencoded",
                            sizeof("application/x-www-form-urlencoded") - 1))
        {
            format = NGX_HTTP_MPNS_FORM_BODY;

        } else {
            return ngx_http_mpns_mistake(err, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                         "unsupported content type",
                                         &ngx_http_mpns_body_field);
        }

        rc = ngx_http_mpns_request_parse(r->pool, mlcf->service, &body,
                                         format, spec, targets, err);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (targets && mlcf->broadcast
        && spec->values[NGX_HTTP_MPNS_F_CHANNEL].data)
    {
        /* a broadcast's recipients come from the registry only */
        return ngx_http_mpns_mistake(err, NGX_HTTP_BAD_REQUEST,
                                     "unknown field",
                                     &ngx_http_mpns_channel_field);
    }

    if (targets && targets->channels
        && (spec->values[NGX_HTTP_MPNS_F_CHANNEL].data
            || conf.values[NGX_HTTP_MPNS_F_CHANNEL].data))
    {
        return ngx_http_mpns_mistake(err, NGX_HTTP_BAD_REQUEST,
                                     "both channel and channels given",
                                     &ngx_http_mpns_channels_field);
    }

    /* nginx.conf wins, field by field: the fields it sets or clears */

    given |= conf.clear;

    for (i = 0; given; i++, given >>= 1) {

        if (!(given & 1)) {
            continue;
        }

        bit = NGX_HTTP_MPNS_BIT(i);

        if (conf.values[i].data) {
            spec->values[i] = conf.values[i];
            spec->clear &= ~bit;

        } else if (conf.clear & bit) {
            ngx_str_null(&spec->values[i]);
            spec->clear |= bit;
        }
    }

    return NGX_OK;
}


/*
 * the fields in a query string (unknown names ignored), a form or a JSON
 * body (unknown names refused); no request needed, for the fuzzer too
 */

ngx_int_t
ngx_http_mpns_request_parse(ngx_pool_t *pool,
    ngx_http_mpns_service_t *service, ngx_str_t *text, ngx_uint_t format,
    ngx_http_mpns_spec_t *spec, ngx_http_mpns_targets_t *targets,
    ngx_http_mpns_error_t *err)
{
    ngx_http_mpns_source_t  src;

    src.service = service;
    src.spec = spec;
    src.targets = targets;
    src.err = err;
    src.pool = pool;
    src.seen = 0;
    src.seen_targets = 0;
    src.strict = (format != NGX_HTTP_MPNS_QUERY_STRING);

    if (format == NGX_HTTP_MPNS_JSON_BODY) {
        return ngx_http_mpns_parse_json(pool, text, &src);
    }

    return ngx_http_mpns_parse_form(pool, text, &src);
}


/* "given": a bit for each field the values set */

static ngx_int_t
ngx_http_mpns_conf_values(ngx_http_request_t *r,
    ngx_http_mpns_loc_conf_t *mlcf, ngx_http_mpns_spec_t *conf,
    uint64_t *given, ngx_http_mpns_error_t *err)
{
    ngx_int_t                    rc;
    ngx_str_t                    value;
    ngx_uint_t                   i;
    ngx_http_mpns_source_t       src;
    ngx_http_mpns_conf_field_t  *cf;

    ngx_memzero(conf, sizeof(ngx_http_mpns_spec_t));
    *given = 0;

    src.service = mlcf->service;
    src.spec = conf;
    src.targets = NULL;
    src.err = err;
    src.pool = r->pool;
    src.seen = 0;
    src.seen_targets = 0;
    src.strict = 1;

    if (mlcf->type) {
        conf->values[NGX_HTTP_MPNS_F_TYPE] =
                                        *mlcf->service->type_name(mlcf->type);
        *given |= NGX_HTTP_MPNS_BIT(NGX_HTTP_MPNS_F_TYPE);
    }

    if (mlcf->channel) {
        if (ngx_http_complex_value(r, mlcf->channel, &value) != NGX_OK) {
            return NGX_ERROR;
        }

        /*
         * a channel passed as a query argument ($arg_channel) arrives
         * percent-encoded: decoded like the module's own query parsing;
         * a channel that already starts with its scheme is kept as is
         * (looked at first where the "%" of either scheme would be)
         */

        if (value.len > 7
            && (value.data[4] == '%' || value.data[5] == '%')
            && (ngx_strncasecmp(value.data, (u_char *) "http%3A", 7) == 0
                || ngx_strncasecmp(value.data, (u_char *) "https%3A", 8)
                   == 0)
            && ngx_http_mpns_request_unescape(r->pool, &value) != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (value.len) {
            conf->values[NGX_HTTP_MPNS_F_CHANNEL] = value;
            *given |= NGX_HTTP_MPNS_BIT(NGX_HTTP_MPNS_F_CHANNEL);
        }
    }

    if (mlcf->fields == NULL) {
        return NGX_OK;
    }

    cf = mlcf->fields->elts;

    for (i = 0; i < mlcf->fields->nelts; i++) {

        if (ngx_http_complex_value(r, &cf[i].value, &value) != NGX_OK) {
            return NGX_ERROR;
        }

        /* like proxy_set_header: an empty value sets nothing */

        if (value.len == 0) {
            continue;
        }

        if (cf[i].index == NGX_HTTP_MPNS_F_CLEAR) {
            rc = ngx_http_mpns_clear_list(&src, &value);
            if (rc != NGX_OK) {
                return rc;
            }

            continue;
        }

        conf->values[cf[i].index] = value;
        *given |= NGX_HTTP_MPNS_BIT(cf[i].index);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_mpns_request_channel(ngx_http_request_t *r,
    ngx_http_mpns_loc_conf_t *mlcf, ngx_str_t *channel, ngx_pool_t *pool,
    ngx_http_mpns_job_t *job, ngx_http_mpns_target_t *target,
    ngx_http_mpns_error_t *err)
{
    return ngx_http_mpns_channel_check(r->connection->log,
                         ngx_http_get_module_loc_conf(r, ngx_http_core_module),
                         mlcf, channel, pool, job, target, err);
}


/* the same without a request: what a background send checks again */

ngx_int_t
ngx_http_mpns_channel_check(ngx_log_t *log, ngx_http_core_loc_conf_t *clcf,
    ngx_http_mpns_loc_conf_t *mlcf, ngx_str_t *channel, ngx_pool_t *pool,
    ngx_http_mpns_job_t *job, ngx_http_mpns_target_t *target,
    ngx_http_mpns_error_t *err)
{
    u_char      *p, *q, *last, *authority;
    size_t       skip;
    in_port_t    default_port, port;
    ngx_str_t    uri, host;
    ngx_int_t    rc;
    ngx_uint_t   fragment;
    ngx_addr_t   addr;

    if (channel->len > NGX_HTTP_MPNS_MAX_CHANNEL) {
        return ngx_http_mpns_mistake(err, NGX_HTTP_BAD_REQUEST,
                                     "channel is too long",
                                     &ngx_http_mpns_channel_field);
    }

    last = channel->data + channel->len;
    fragment = 0;

    for (p = channel->data; p < last; p++) {

        if (ngx_http_mpns_url_byte[*p] == NGX_HTTP_MPNS_URL_OK) {
            continue;
        }

        if (ngx_http_mpns_url_byte[*p] == NGX_HTTP_MPNS_URL_INVALID) {
            return ngx_http_mpns_mistake(err, NGX_HTTP_BAD_REQUEST,
                                         "invalid character",
                                         &ngx_http_mpns_channel_field);
        }

        if (ngx_http_mpns_url_byte[*p] == NGX_HTTP_MPNS_URL_FRAGMENT) {
            fragment = 1;
        }
    }

    if (channel->len > 7
        && ngx_strncasecmp(channel->data, (u_char *) "http://", 7) == 0)
    {
        skip = 7;
        default_port = 80;

    } else if (channel->len > 8
               && ngx_strncasecmp(channel->data, (u_char *) "https://", 8)
                  == 0)
    {
        skip = 8;
        default_port = 443;

    } else {
        return ngx_http_mpns_mistake(err, NGX_HTTP_BAD_REQUEST,
                                     "channel is not an http or https url",
                                     &ngx_http_mpns_channel_field);
    }

    authority = channel->data + skip;

    for (p = authority; p < last; p++) {

        if (ngx_http_mpns_url_byte[*p] == NGX_HTTP_MPNS_URL_END) {
            break;
        }

        if (ngx_http_mpns_url_byte[*p] == NGX_HTTP_MPNS_URL_NOT_HOST) {
            return ngx_http_mpns_mistake(err, NGX_HTTP_BAD_REQUEST,
                                         "invalid channel",
                                         &ngx_http_mpns_channel_field);
        }
    }

    if (p == authority || fragment) {
        return ngx_http_mpns_mistake(err, NGX_HTTP_BAD_REQUEST,
                                     "invalid channel",
                                     &ngx_http_mpns_channel_field);
    }

    target->host.data = authority;
    target->host.len = p - authority;

    if (p == last) {
        ngx_str_set(&target->uri, "/");

    } else if (*p == '?') {
        target->uri.len = last - p + 1;
        target->uri.data = ngx_pnalloc(pool, target->uri.len);
        if (target->uri.data == NULL) {
            return NGX_ERROR;
        }

        target->uri.data[0] = '/';
        ngx_memcpy(target->uri.data + 1, p, last - p);

    } else {
        target->uri.data = p;
        target->uri.len = last - p;
    }

    if (ngx_http_mpns_authority(&target->host, default_port, &host, &port)
        != NGX_OK)
    {
        return ngx_http_mpns_mistake(err, NGX_HTTP_BAD_REQUEST,
                                     "invalid channel",
                                     &ngx_http_mpns_channel_field);
    }

    rc = ngx_http_mpns_allowed(mlcf, &host, log);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_mpns_mistake(err, NGX_HTTP_FORBIDDEN,
                                     "channel host is not allowed",
                                     &ngx_http_mpns_channel_field);
    }

    if (!ngx_http_mpns_port_allowed(mlcf->allowed_ports, port)) {
        return ngx_http_mpns_mistake(err, NGX_HTTP_FORBIDDEN,
                                     "channel port is not allowed",
                                     &ngx_http_mpns_channel_field);
    }

    /* an address, or a name to resolve (its addresses: the peer layer) */

    p = host.data;
    last = host.data + host.len;

    if (p < last && *p == '[') {
        p++;
        last--;
    }

    ngx_memzero(&addr, sizeof(ngx_addr_t));

    rc = ngx_parse_addr(pool, &addr, p, last - p);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    /*
     * Digits and dots are an IPv4 address in its usual form, or refused:
     * other forms are other addresses to other software ("2130706433",
     * "127.1", "0177.0.0.1" for inet_aton()), and ngx_inet_addr() cannot
     * return 255.255.255.255.  None of them is a name to resolve.
     */

    for (q = p; q < last && (*q == '.' || (*q >= '0' && *q <= '9')); q++) {
        /* void */
    }

    if (q == last
        && (rc != NGX_OK
            || addr.sockaddr->sa_family != AF_INET
            || !ngx_http_mpns_dotted_quad(p, last)))
    {
        return ngx_http_mpns_mistake(err, NGX_HTTP_FORBIDDEN,
                                     "channel address is not allowed",
                                     &ngx_http_mpns_channel_field);
    }

    if (rc == NGX_OK
        && ngx_http_mpns_address_allowed(mlcf->allowed_addresses,
                                         addr.sockaddr)
           != NGX_OK)
    {
        return ngx_http_mpns_mistake(err, NGX_HTTP_FORBIDDEN,
                                     "channel address is not allowed",
                                     &ngx_http_mpns_channel_field);
    }

    if (job == NULL) {
        /* validation only */
        return NGX_OK;
    }

    job->port = port;
    job->name = target->host;

    if (rc == NGX_OK) {
        ngx_inet_set_port(addr.sockaddr, port);
        addr.name = target->host;
    }

    if (default_port == 443) {
        job->ssl = mlcf->ssl.profile;
        job->ip_literal = (rc == NGX_OK);

        /* for SNI and the certificate check: no port, no brackets */

        job->ssl_name.len = last - p;
        job->ssl_name.data = ngx_pnalloc(pool, job->ssl_name.len + 1);
        if (job->ssl_name.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(job->ssl_name.data, p, job->ssl_name.len);
        job->ssl_name.data[job->ssl_name.len] = '\0';
    }

    if (mlcf->proxy) {

        /*
         * the proxy resolves the channel's host; plain http goes in the
         * absolute form, https through a CONNECT tunnel
         */

        job->proxy = mlcf->proxy;
        job->addrs = mlcf->proxy->addrs;
        job->naddrs = mlcf->proxy->naddrs;

        if (job->ssl == NULL) {
            uri = target->uri;

            p = ngx_pnalloc(pool, sizeof("http://") - 1 + target->host.len
                                  + uri.len);
            if (p == NULL) {
                return NGX_ERROR;
            }

            target->uri.data = p;

            p = ngx_cpymem(p, "http://", sizeof("http://") - 1);
            p = ngx_cpymem(p, target->host.data, target->host.len);
            p = ngx_cpymem(p, uri.data, uri.len);

            target->uri.len = p - target->uri.data;
        }

        return NGX_OK;
    }

    if (addr.sockaddr) {
        job->addrs = ngx_palloc(pool, sizeof(ngx_addr_t));
        if (job->addrs == NULL) {
            return NGX_ERROR;
        }

        *job->addrs = addr;
        job->naddrs = 1;

        return NGX_OK;
    }

    job->host = host;
    job->addresses = mlcf->allowed_addresses;
    job->resolver = clcf->resolver;
    job->resolver_timeout = clcf->resolver_timeout;

    return NGX_OK;
}


/* "host", "host:port", "[v6]" or "[v6]:port" */

static ngx_int_t
ngx_http_mpns_authority(ngx_str_t *authority, in_port_t default_port,
    ngx_str_t *host, in_port_t *port)
{
    u_char     *p, *last;
    ngx_int_t   n;

    p = authority->data;
    last = p + authority->len;

    host->data = p;

    if (*p == '[') {
        p = ngx_strlchr(p, last, ']');

        if (p == NULL || p == host->data + 1) {
            return NGX_ERROR;
        }

        p++;

    } else {
        p = ngx_strlchr(p, last, ':');

        if (p == NULL) {
            p = last;
        }
    }

    host->len = p - host->data;

    if (host->len == 0) {
        return NGX_ERROR;
    }

    if (p == last) {
        *port = default_port;
        return NGX_OK;
    }

    if (*p != ':') {
        return NGX_ERROR;
    }

    n = ngx_atoi(p + 1, last - p - 1);

    if (n < 1 || n > 65535) {
        return NGX_ERROR;
    }

    *port = (in_port_t) n;

    return NGX_OK;
}


/* "a.b.c.d", each 0-255 without leading zeros: how ngx_inet_ntop() writes */

static ngx_uint_t
ngx_http_mpns_dotted_quad(u_char *p, u_char *last)
{
    u_char      *start;
    ngx_uint_t   n, octet;

    for (n = 0; n < 4; n++) {

        if (n && (p == last || *p++ != '.')) {
            return 0;
        }

        start = p;
        octet = 0;

        while (p < last && p - start < 3 && *p >= '0' && *p <= '9') {
            octet = octet * 10 + (*p++ - '0');
        }

        if (p == start || octet > 255 || (*start == '0' && p - start > 1)) {
            return 0;
        }
    }

    return p == last;
}


/*
 * mpns_allowed_hosts; the last host a worker found allowed for a location
 * is remembered, as fan-outs and busy senders repeat the same few hosts
 */

static ngx_int_t
ngx_http_mpns_allowed(ngx_http_mpns_loc_conf_t *mlcf, ngx_str_t *host,
    ngx_log_t *log)
{
    ngx_int_t                   rc;
    ngx_http_mpns_allowed_t    *last;

    last = mlcf->allowed;

    if (last && last->len == host->len
        && ngx_strncmp(last->host, host->data, host->len) == 0)
    {
        return NGX_OK;
    }

    rc = ngx_regex_exec_array(mlcf->allowed_hosts, host, log);

    if (rc == NGX_OK && last && host->len <= NGX_HTTP_MPNS_MAX_HOST) {
        last->len = host->len;
        ngx_memcpy(last->host, host->data, host->len);
    }

    return rc;
}


static ngx_uint_t
ngx_http_mpns_port_allowed(ngx_array_t *ports, in_port_t port)
{
    ngx_uint_t                   i;
    ngx_http_mpns_port_range_t  *range;

    range = ports->elts;

    for (i = 0; i < ports->nelts; i++) {
        if (port >= range[i].low && port <= range[i].high) {
            return 1;
        }
    }

    return 0;
}


ngx_int_t
ngx_http_mpns_request_body(ngx_http_request_t *r, size_t max, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    body->len = 0;
    body->data = NULL;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    len = 0;

    for ( /* void */ ; cl; cl = cl->next) {
        b = cl->buf;
        len += b->in_file ? (size_t) (b->file_last - b->file_pos)
                          : (size_t) (b->last - b->pos);
    }

    if (len > max) {
        return NGX_DECLINED;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        body->data = cl->buf->pos;
        body->len = len;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            /* the last buffer of a chunked body may be empty, pos NULL */
            p = ngx_http_mpns_cpymem(p, b->pos, b->last - b->pos);
            continue;
        }

        n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                          b->file_pos);

        if (n != b->file_last - b->file_pos) {
            return NGX_ERROR;
        }

        p += n;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_mpns_request_is_type(ngx_table_elt_t *h, char *type, size_t len)
{
    /* a media type in any case; clients write it as "type" is, mostly */

    if (h == NULL || h->value.len < len
        || (ngx_strncmp(h->value.data, type, len) != 0
            && ngx_strncasecmp(h->value.data, (u_char *) type, len) != 0))
    {
        return 0;
    }

    return h->value.len == len || h->value.data[len] == ';'
           || h->value.data[len] == ' ';
}


static ngx_int_t
ngx_http_mpns_parse_form(ngx_pool_t *pool, ngx_str_t *text,
    ngx_http_mpns_source_t *src)
{
    u_char     *p, *last, *amp, *eq;
    ngx_int_t   rc;
    ngx_str_t   name, value;

    p = text->data;
    last = p + text->len;

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

        if (name.len == 0) {
            continue;
        }

        if (ngx_http_mpns_request_unescape(pool, &name) != NGX_OK
            || ngx_http_mpns_request_unescape(pool, &value) != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (name.len == sizeof("clear") - 1
            && ngx_strncmp(name.data, "clear", 5) == 0)
        {
            rc = ngx_http_mpns_clear_list(src, &value);

        } else {
            rc = ngx_http_mpns_set(src, &name, &value);
        }

        if (rc != NGX_OK) {
            return rc;
        }
    }

    return NGX_OK;
}


/* "+" is a space in forms, then %XX; a copy only if something changes */

ngx_int_t
ngx_http_mpns_request_unescape(ngx_pool_t *pool, ngx_str_t *text)
{
    u_char  *end, *dst, *d, *s;

    end = text->data + text->len;

    if (ngx_strlchr(text->data, end, '%') == NULL
        && ngx_strlchr(text->data, end, '+') == NULL)
    {
        return NGX_OK;
    }

    dst = ngx_pnalloc(pool, text->len);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    for (s = text->data, d = dst; s < end; s++) {
        *d++ = (*s == '+') ? ' ' : *s;
    }

    s = dst;
    d = dst;
    ngx_unescape_uri(&d, &s, text->len, 0);

    text->data = dst;
    text->len = d - dst;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_parse_json(ngx_pool_t *pool, ngx_str_t *text,
    ngx_http_mpns_source_t *src)
{
    uint64_t                   keys;
    ngx_int_t                  rc, index;
    ngx_str_t                  name, value;
    ngx_uint_t                 i, k, n, e;
    ngx_http_mpns_json_t       json;
    ngx_http_mpns_json_tok_t  *t, *v;

    rc = ngx_http_mpns_json_parse(pool, text, &json);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                     json.error, &ngx_http_mpns_body_field);
    }

    if (json.tokens[0].type != NGX_HTTP_MPNS_JSON_OBJECT) {
        return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                     "invalid json",
                                     &ngx_http_mpns_body_field);
    }

    t = json.tokens;
    i = 1;
    keys = 0;

    for (n = 0; n < t[0].size; n++) {

        if (ngx_http_mpns_json_string(pool, &t[i], &name) != NGX_OK) {
            return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                         "invalid json",
                                         &ngx_http_mpns_body_field);
        }

        v = &t[i + 1];
        i = v->next;

        rc = ngx_http_mpns_set_target(src, &name, &json, v);

        if (rc != NGX_DONE) {
            if (rc != NGX_OK) {
                return rc;
            }

            continue;
        }

        index = src->service->field_index(&name);

        if (index == NGX_ERROR) {
            return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                         "unknown field", &name);
        }

        name = src->service->field(index)->name;

        /* a key given twice, whatever its values (null included) */

        if (keys & NGX_HTTP_MPNS_BIT(index)) {
            return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                         "duplicate field", &name);
        }

        keys |= NGX_HTTP_MPNS_BIT(index);

        switch (v->type) {

        case NGX_HTTP_MPNS_JSON_STRING:
            rc = ngx_http_mpns_json_string(pool, v, &value);
            if (rc == NGX_ERROR) {
                return NGX_ERROR;
            }

            if (rc != NGX_OK) {
                /* a broken surrogate pair */
                return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                             "invalid character", &name);
            }

            if (index == NGX_HTTP_MPNS_F_CLEAR) {
                rc = ngx_http_mpns_clear_list(src, &value);

            } else {
                rc = ngx_http_mpns_set_index(src, index, &value);
            }

            break;

        case NGX_HTTP_MPNS_JSON_PRIMITIVE:

            /* node-mpns: null clears a tile property */

            if (v->raw.len == 4 && ngx_strncmp(v->raw.data, "null", 4) == 0) {
                rc = ngx_http_mpns_clear(src, &name);
                break;
            }

            /* numbers and booleans are taken as written */

            rc = ngx_http_mpns_set_index(src, index, &v->raw);
            break;

        case NGX_HTTP_MPNS_JSON_ARRAY:

            if (index != NGX_HTTP_MPNS_F_CLEAR) {
                return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                             "invalid value", &name);
            }

            rc = NGX_OK;
            k = (v - t) + 1;

            for (e = 0; e < v->size && rc == NGX_OK; e++, k = t[k].next) {

                if (ngx_http_mpns_json_string(pool, &t[k], &value)
                    != NGX_OK)
                {
                    return ngx_http_mpns_mistake(src->err,
                                                 NGX_HTTP_BAD_REQUEST,
                                                 "invalid value", &name);
                }

                rc = ngx_http_mpns_clear(src, &value);
            }

            break;

        default:
            return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                         "invalid value", &name);
        }

        if (rc != NGX_OK) {
            return rc;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_set(ngx_http_mpns_source_t *src, ngx_str_t *name,
    ngx_str_t *value)
{
    ngx_int_t                 rc, index;
    ngx_http_mpns_json_tok_t  tok;

    if (src->targets) {
        tok.type = NGX_HTTP_MPNS_JSON_STRING;
        tok.raw = *value;
        tok.size = 0;
        tok.next = 0;

        rc = ngx_http_mpns_set_target(src, name, NULL, &tok);

        if (rc != NGX_DONE) {
            return rc;
        }
    }

    index = src->service->field_index(name);

    if (index == NGX_ERROR) {
        if (!src->strict) {
            /* query strings carry other things too */
            return NGX_OK;
        }

        return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                     "unknown field", name);
    }

    return ngx_http_mpns_set_index(src, index, value);
}


/*
 * "channels" (a JSON array, for mpns_send) and the broadcast filters;
 * NGX_DONE when "name" is none of them here.  A value from a form is
 * passed as an already decoded string token with no json.
 */

static ngx_int_t
ngx_http_mpns_set_target(ngx_http_mpns_source_t *src, ngx_str_t *name,
    ngx_http_mpns_json_t *json, ngx_http_mpns_json_tok_t *v)
{
    ngx_str_t                 *dst, value;
    ngx_uint_t                 i, bit;
    ngx_http_mpns_targets_t   *tg;

    tg = src->targets;

    if (tg == NULL) {
        return NGX_DONE;
    }

    for (i = 0; ngx_http_mpns_target_names[i].len; i++) {
        if (name->len == ngx_http_mpns_target_names[i].len
            && ngx_strncmp(name->data, ngx_http_mpns_target_names[i].data,
                           name->len)
               == 0)
        {
            break;
        }
    }

    if (ngx_http_mpns_target_names[i].len == 0) {
        return NGX_DONE;
    }

    /* "channels" belongs to mpns_send, the filters to mpns_broadcast */

    if (i < 4 && (i == 0) == tg->broadcast) {
        return NGX_DONE;
    }

    bit = (ngx_uint_t) 1 << i;

    if (src->seen_targets & bit) {
        return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                     "duplicate field",
                                     &ngx_http_mpns_target_names[i]);
    }

    src->seen_targets |= bit;

    if (i == 0) {
        if (json == NULL || v->type != NGX_HTTP_MPNS_JSON_ARRAY) {
            return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                         "invalid value",
                                         &ngx_http_mpns_channels_field);
        }

        if (v->size == 0) {
            return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                         "empty list",
                                         &ngx_http_mpns_channels_field);
        }

        tg->json = *json;
        tg->channels = v - json->tokens;

        return NGX_OK;
    }

    /* an empty filter matches everything */

    switch (i) {
    case 1:
        dst = &tg->filter.user;
        break;
    case 2:
        dst = &tg->filter.tag;
        break;
    case 3:
        dst = &tg->filter.os;
        break;
    case 4:
        dst = &tg->send_at;
        break;
    case 5:
        dst = &tg->delay;
        break;
    case 6:
        dst = &tg->async;
        break;
    case 7:
        dst = &tg->every;
        break;
    case 8:
        dst = &tg->times;
        break;
    default:
        dst = &tg->until;
    }

    if (i >= 5 && i != 9 && v->type == NGX_HTTP_MPNS_JSON_PRIMITIVE) {

        /* a number, true or false */

        *dst = v->raw;

        return NGX_OK;
    }

    if (v->type != NGX_HTTP_MPNS_JSON_STRING) {
        return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                     "invalid value",
                                     &ngx_http_mpns_target_names[i]);
    }

    if (json) {
        if (ngx_http_mpns_json_string(src->pool, v, &value) != NGX_OK) {
            return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                         "invalid value",
                                         &ngx_http_mpns_target_names[i]);
        }

    } else {
        value = v->raw;
    }

    if (value.len > NGX_HTTP_MPNS_MAX_NAME) {
        return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                     "value too long",
                                     &ngx_http_mpns_target_names[i]);
    }

    /* a background broadcast keeps its filter in JSON, in the state file */

    if (i < 4 && ngx_http_mpns_json_valid_name(&value) != NGX_OK) {
        return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                     "invalid character",
                                     &ngx_http_mpns_target_names[i]);
    }

    *dst = value;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_set_index(ngx_http_mpns_source_t *src, ngx_uint_t index,
    ngx_str_t *value)
{
    uint64_t  bit;

    bit = NGX_HTTP_MPNS_BIT(index);

    if (src->seen & bit) {
        return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                     (src->spec->clear & bit)
                                     ? "field both set and cleared"
                                     : "duplicate field",
                                     &src->service->field(index)->name);
    }

    src->seen |= bit;
    src->spec->values[index] = *value;
    src->spec->clear &= ~bit;

    if (value->data == NULL) {
        /* an empty value is still a value */
        src->spec->values[index].data = (u_char *) "";
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_clear(ngx_http_mpns_source_t *src, ngx_str_t *name)
{
    uint64_t                bit;
    ngx_int_t               index;
    ngx_http_mpns_field_t  *f;

    index = src->service->field_index(name);

    if (index == NGX_ERROR) {
        return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                     "invalid value",
                                     &ngx_http_mpns_clear_field);
    }

    f = src->service->field(index);

    if (f->element.len == 0 || !(f->types & NGX_HTTP_MPNS_ANY_TILE)) {
        return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                     "field cannot be cleared", &f->name);
    }

    bit = NGX_HTTP_MPNS_BIT(index);

    if (src->seen & bit) {
        return ngx_http_mpns_mistake(src->err, NGX_HTTP_BAD_REQUEST,
                                     "field both set and cleared", &f->name);
    }

    src->seen |= bit;
    src->spec->clear |= bit;
    ngx_str_null(&src->spec->values[index]);

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_clear_list(ngx_http_mpns_source_t *src, ngx_str_t *list)
{
    u_char     *p, *last, *comma;
    ngx_int_t   rc;
    ngx_str_t   name;

    p = list->data;
    last = p + list->len;

    while (p < last) {

        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        name.data = p;
        name.len = comma - p;

        p = comma + 1;

        while (name.len && name.data[0] == ' ') {
            name.data++;
            name.len--;
        }

        while (name.len && name.data[name.len - 1] == ' ') {
            name.len--;
        }

        if (name.len == 0) {
            continue;
        }

        rc = ngx_http_mpns_clear(src, &name);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_mistake(ngx_http_mpns_error_t *err, ngx_uint_t status,
    const char *text, ngx_str_t *field)
{
    err->status = status;
    err->text = text;
    err->field = *field;

    return NGX_DECLINED;
}
