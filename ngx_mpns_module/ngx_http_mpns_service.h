
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_SERVICE_H_INCLUDED_
#define _NGX_HTTP_MPNS_SERVICE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_mpns.h"
#include "ngx_http_mpns_message.h"


/* a response header a service keeps, and how the module reports it */
typedef struct {
    ngx_str_t                      name;      /* lower case, as compared */
    ngx_str_t                      header;    /* as repeated to the client */
    ngx_str_t                      key;       /* JSON key, empty: none */
} ngx_http_mpns_header_t;


/*
 * What is specific to a push service.  The peer layer below it (resolve,
 * connect, proxy tunnel, TLS, keep-alive, HTTP framing) knows nothing of
 * these; the request, fan-out and outbox code above reach the service
 * only through this table, as ngx_http_upstream reaches a protocol module
 * through the handlers it installed.
 */
struct ngx_http_mpns_service_s {
    ngx_str_t                      name;

    /* the request fields, control fields first, with their aliases */
    ngx_int_t                    (*field_index)(ngx_str_t *name);
    ngx_http_mpns_field_t       *(*field)(ngx_uint_t index);
    ngx_int_t                    (*type)(ngx_str_t *name);
    ngx_str_t                   *(*type_name)(ngx_uint_t type);

    /* validation and the payload, once per notification */
    ngx_int_t                    (*build)(ngx_pool_t *pool,
                                     ngx_http_mpns_spec_t *spec,
                                     size_t max_payload,
                                     ngx_http_mpns_message_t *msg,
                                     ngx_http_mpns_error_t *err);

    /* the complete request for one channel, once per recipient */
    ngx_int_t                    (*create_request)(ngx_pool_t *pool,
                                     ngx_http_mpns_message_t *msg,
                                     ngx_http_mpns_target_t *target,
                                     ngx_str_t *out);

    /*
     * Called before a job connects, NULL: nothing to do; NGX_AGAIN
     * means the service calls ngx_http_mpns_job_resume() later (a token
     * to fetch first), NGX_ERROR fails the job.
     */
    ngx_int_t                    (*authorize)(ngx_http_mpns_job_t *job);

    /* the response headers kept, at their index in response->headers */
    ngx_http_mpns_header_t        *headers;
    ngx_uint_t                     nheaders;

    /* an HTTP answer to a service outcome */
    ngx_uint_t                   (*classify)(ngx_http_mpns_response_t *resp);

    /* tried again within a request, after a short delay */
    ngx_uint_t                   (*retryable)(ngx_uint_t outcome);

    /* tried again from the outbox after this long, 0: the outcome stands */
    ngx_msec_t                   (*backoff)(ngx_http_mpns_outbox_conf_t *oc,
                                     ngx_uint_t outcome, ngx_uint_t attempts);

    /* a tile the device shows, NULL: no way to tell */
    ngx_uint_t                   (*shown)(ngx_http_mpns_response_t *resp);
};


extern ngx_http_mpns_service_t  ngx_http_mpns_service_mpns;
extern ngx_http_mpns_service_t  ngx_http_mpns_service_http;


#endif /* _NGX_HTTP_MPNS_SERVICE_H_INCLUDED_ */
