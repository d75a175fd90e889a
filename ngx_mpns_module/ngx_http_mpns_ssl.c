
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_ssl.h"
#include "ngx_http_mpns_peer.h"


#define NGX_HTTP_MPNS_SSL_DEPTH         100


static ngx_int_t ngx_http_mpns_ssl_profile(ngx_conf_t *cf,
    ngx_http_mpns_ssl_conf_t *conf);


ngx_conf_bitmask_t  ngx_http_mpns_ssl_protocols[] = {
    { ngx_string("SSLv2"), NGX_SSL_SSLv2 },
    { ngx_string("SSLv3"), NGX_SSL_SSLv3 },
    { ngx_string("TLSv1"), NGX_SSL_TLSv1 },
    { ngx_string("TLSv1.1"), NGX_SSL_TLSv1_1 },
    { ngx_string("TLSv1.2"), NGX_SSL_TLSv1_2 },
    { ngx_string("TLSv1.3"), NGX_SSL_TLSv1_3 },
    { ngx_null_string, 0 }
};


void
ngx_http_mpns_ssl_create_conf(ngx_http_mpns_ssl_conf_t *conf)
{
    /*
     * set by ngx_pcalloc():
     *
     *     conf->certificate = { 0, NULL };
     *     conf->certificate_key = { 0, NULL };
     *     conf->trusted_certificate = { 0, NULL };
     *     conf->ciphers = { 0, NULL };
     *     conf->protocols = 0;
     *     conf->profile = NULL;
     */

    conf->passwords = NGX_CONF_UNSET_PTR;
    conf->verify = NGX_CONF_UNSET;
    conf->server_name = NGX_CONF_UNSET;
}


/*
 * A level that sets none of the mpns_ssl_* directives shares its
 * parent's profile; the profile of the http level is made by the first
 * server that needs it, so that all of them share one SSL_CTX.
 */

char *
ngx_http_mpns_ssl_merge_conf(ngx_conf_t *cf, ngx_http_mpns_ssl_conf_t *conf,
    ngx_http_mpns_ssl_conf_t *prev)
{
    ngx_uint_t  preserve;

    if (conf->certificate.data == NULL
        && conf->certificate_key.data == NULL
        && conf->passwords == NGX_CONF_UNSET_PTR
        && conf->trusted_certificate.data == NULL
        && conf->verify == NGX_CONF_UNSET
        && conf->protocols == 0
        && conf->ciphers.data == NULL
        && conf->server_name == NGX_CONF_UNSET)
    {
        if (prev->profile) {
            *conf = *prev;
            return NGX_CONF_OK;
        }

        preserve = 1;

    } else {
        preserve = 0;
    }

    ngx_conf_merge_str_value(conf->certificate, prev->certificate, "");
    ngx_conf_merge_str_value(conf->certificate_key, prev->certificate_key,
                             "");
    ngx_conf_merge_ptr_value(conf->passwords, prev->passwords, NULL);
    ngx_conf_merge_str_value(conf->trusted_certificate,
                             prev->trusted_certificate, "");
    ngx_conf_merge_value(conf->verify, prev->verify, 1);
    ngx_conf_merge_bitmask_value(conf->protocols, prev->protocols,
                                 (NGX_CONF_BITMASK_SET|NGX_SSL_TLSv1_2
                                  |NGX_SSL_TLSv1_3));
    ngx_conf_merge_str_value(conf->ciphers, prev->ciphers, "DEFAULT");
    ngx_conf_merge_value(conf->server_name, prev->server_name, 1);

    if (conf->certificate.len && conf->certificate_key.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no \"mpns_ssl_certificate_key\" is defined "
                           "for certificate \"%V\"", &conf->certificate);
        return NGX_CONF_ERROR;
    }

    if (conf->certificate_key.len && conf->certificate.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no \"mpns_ssl_certificate\" is defined "
                           "for key \"%V\"", &conf->certificate_key);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_mpns_ssl_profile(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (preserve) {
        *prev = *conf;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_mpns_ssl_profile(ngx_conf_t *cf, ngx_http_mpns_ssl_conf_t *conf)
{
    ngx_pool_cleanup_t   *cln;
    ngx_http_mpns_ssl_t  *profile;

    profile = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpns_ssl_t));
    if (profile == NULL) {
        return NGX_ERROR;
    }

    profile->ssl.log = cf->log;

    if (ngx_ssl_create(&profile->ssl, conf->protocols, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(&profile->ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = &profile->ssl;

    if (conf->certificate.len) {
        if (ngx_ssl_certificate(cf, &profile->ssl, &conf->certificate,
                                &conf->certificate_key, conf->passwords)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_ssl_ciphers(cf, &profile->ssl, &conf->ciphers, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    if (conf->verify) {
        if (ngx_ssl_trusted_certificate(cf, &profile->ssl,
                                        &conf->trusted_certificate,
                                        NGX_HTTP_MPNS_SSL_DEPTH)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        /* without mpns_ssl_trusted_certificate, the system's CA bundle */

        if (conf->trusted_certificate.len == 0
            && SSL_CTX_set_default_verify_paths(profile->ssl.ctx) != 1)
        {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          "SSL_CTX_set_default_verify_paths() failed");
            return NGX_ERROR;
        }
    }

    /* the engine tells a refused client certificate by the alert */

    SSL_CTX_set_info_callback(profile->ssl.ctx,
                              ngx_http_mpns_ssl_info_callback);

    /* sessions are kept by the engine, per profile and server */

    if (ngx_ssl_client_session_cache(cf, &profile->ssl, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    profile->verify = conf->verify;
    profile->server_name = conf->server_name;
    profile->certificate = conf->certificate;

    conf->profile = profile;

    return NGX_OK;
}


char *
ngx_http_mpns_ssl_password_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_mpns_ssl_conf_t *sc = (void *) ((char *) conf + cmd->offset);

    ngx_str_t  *value;

    if (sc->passwords != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    sc->passwords = ngx_ssl_read_password_file(cf, &value[1]);

    if (sc->passwords == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
