
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_SSL_H_INCLUDED_
#define _NGX_HTTP_MPNS_SSL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_http_mpns.h"


/*
 * A certificate profile: one SSL_CTX, built at configuration time, with
 * the client certificate a location sends with, and how it checks MPNS.
 * Connections and TLS sessions are cached per profile, never across.
 */
struct ngx_http_mpns_ssl_s {
    ngx_ssl_t                      ssl;
    ngx_flag_t                     verify;
    ngx_flag_t                     server_name;
    ngx_str_t                      certificate;   /* empty: none */
};


/* what a location configures with the mpns_ssl_* directives */
typedef struct {
    ngx_str_t                      certificate;
    ngx_str_t                      certificate_key;
    ngx_array_t                   *passwords;
    ngx_str_t                      trusted_certificate;
    ngx_flag_t                     verify;
    ngx_uint_t                     protocols;
    ngx_str_t                      ciphers;
    ngx_flag_t                     server_name;

    ngx_http_mpns_ssl_t           *profile;
} ngx_http_mpns_ssl_conf_t;


void ngx_http_mpns_ssl_create_conf(ngx_http_mpns_ssl_conf_t *conf);
char *ngx_http_mpns_ssl_merge_conf(ngx_conf_t *cf,
    ngx_http_mpns_ssl_conf_t *conf, ngx_http_mpns_ssl_conf_t *prev);
char *ngx_http_mpns_ssl_password_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

extern ngx_conf_bitmask_t  ngx_http_mpns_ssl_protocols[];


#endif /* _NGX_HTTP_MPNS_SSL_H_INCLUDED_ */
