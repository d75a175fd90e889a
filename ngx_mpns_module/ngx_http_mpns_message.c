
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_mpns_message.h"


/*
 * The outcomes every service reports in, and what the caller is to do
 * about each: the vocabulary of answers, summaries, variables and the
 * outbox's state file (which keeps the names, never the indexes).
 */

static ngx_http_mpns_outcome_t  ngx_http_mpns_outcomes[] = {
    { ngx_string("delivered"), ngx_string("none"), 0 },
    { ngx_string("queue_full"), ngx_string("retry"), 60 },
    { ngx_string("suppressed"), ngx_string("none"), 0 },
    { ngx_string("dropped"), ngx_string("none"), 0 },
    { ngx_string("bad_request"), ngx_string("fix_request"), 0 },
    { ngx_string("unauthorized"), ngx_string("check_certificate"), 0 },
    { ngx_string("forbidden"), ngx_string("check_certificate"), 0 },
    { ngx_string("expired"), ngx_string("delete_channel"), 0 },
    { ngx_string("method_not_allowed"), ngx_string("fix_request"), 0 },
    { ngx_string("throttled"), ngx_string("retry"), 3600 },

    /* MPNS asks for at most one retry per hour to an inactive device */
    { ngx_string("device_inactive"), ngx_string("retry"), 3660 },

    { ngx_string("unavailable"), ngx_string("retry"), 60 },
    { ngx_string("transport_error"), ngx_string("retry"), 60 },
    { ngx_string("timeout"), ngx_string("retry"), 60 },

    /* a fan-out recipient that mpns_allowed_hosts no longer allows */
    { ngx_string("refused"), ngx_string("fix_request"), 0 },

    /* https channels */
    { ngx_string("tls_handshake_failed"), ngx_string("retry"), 60 },
    { ngx_string("tls_verify_failed"), ngx_string("check_server"), 0 },
    { ngx_string("certificate_rejected"), ngx_string("check_certificate"),
      0 }
};


ngx_http_mpns_outcome_t *
ngx_http_mpns_outcome(ngx_uint_t outcome)
{
    if (outcome >= sizeof(ngx_http_mpns_outcomes)
                   / sizeof(ngx_http_mpns_outcome_t))
    {
        return NULL;
    }

    return &ngx_http_mpns_outcomes[outcome];
}


ngx_int_t
ngx_http_mpns_outcome_by_name(ngx_str_t *name)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_MPNS_NOUTCOMES; i++) {
        if (name->len == ngx_http_mpns_outcomes[i].name.len
            && ngx_strncmp(name->data, ngx_http_mpns_outcomes[i].name.data,
                           name->len)
               == 0)
        {
            return i;
        }
    }

    return NGX_ERROR;
}


u_char *
ngx_http_mpns_message_count(u_char *dst, ngx_http_mpns_message_t *msg,
    ngx_uint_t count)
{
    u_char  *p;

    p = msg->body.data;

    dst = ngx_cpymem(dst, p, msg->count_pos);

    if (count >= 10) {
        *dst++ = (u_char) ('0' + count / 10 % 10);
    }

    *dst++ = (u_char) ('0' + count % 10);

    p += msg->count_pos + msg->count_len;

    return ngx_cpymem(dst, p, msg->body.len - msg->count_pos
                              - msg->count_len);
}
