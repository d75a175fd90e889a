
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_FANOUT_H_INCLUDED_
#define _NGX_HTTP_MPNS_FANOUT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns.h"
#include "ngx_http_mpns_message.h"
#include "ngx_http_mpns_store.h"


/* what became of one recipient, as the completion step hands it over */
typedef struct {
    ngx_str_t                      channel;
    ngx_uint_t                     outcome;
    ngx_http_mpns_response_t      *response;  /* NULL: nobody was asked */
    ngx_uint_t                     attempts;
    ngx_msec_t                     elapsed;
    time_t                         retry_after;  /* 0: the outcome's */
    ngx_log_t                     *log;
    ngx_http_mpns_error_t         *error;     /* why it was refused */

    unsigned                       held:1;    /* answered by mpns_hold */
    unsigned                       removed:1; /* expired, out of the registry */
    unsigned                       pin:1;     /* of the follow-up message */
} ngx_http_mpns_result_t;


/*
 * The next recipient: NGX_OK, NGX_DONE at the end, NGX_ERROR; NGX_AGAIN
 * while a store fetches more, which then completes an operation whose
 * handler is ngx_http_mpns_fanout_resume() (data: the fan-out).
 */
typedef ngx_int_t (*ngx_http_mpns_fanout_next_pt)(ngx_http_mpns_fanout_t *fo,
    ngx_str_t *channel);

/* a result, in the owner's terms: NGX_OK, NGX_ERROR stops the fan-out */
typedef ngx_int_t (*ngx_http_mpns_fanout_record_pt)(
    ngx_http_mpns_fanout_t *fo, ngx_http_mpns_result_t *res);

/* every recipient is done, or the fan-out stopped on an error */
typedef void (*ngx_http_mpns_fanout_done_pt)(ngx_http_mpns_fanout_t *fo);


/*
 * One notification to the channels a source produces, each through one
 * job of the peer layer, at most "concurrency" at a time and within the
 * worker's mpns_worker_concurrency slots, shared by every fan-out of the
 * worker (a single send is a fan-out of one).  Results go through one
 * completion step - holds, expired channels - to the owner's sink.
 */
struct ngx_http_mpns_fanout_s {
    /* set by the owner */
    ngx_http_mpns_loc_conf_t      *conf;      /* how and where to send */
    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_mpns_message_t       *msg;
    ngx_log_t                     *log;
    ngx_http_request_t            *request;   /* NULL: in the background */
    ngx_http_mpns_registry_t      *registry;  /* expired are removed */
    ngx_uint_t                     concurrency;
    ngx_uint_t                     rate;      /* per second, 0: any */
    ngx_uint_t                     retries;   /* within a request */

    ngx_http_mpns_fanout_next_pt   next;
    ngx_http_mpns_fanout_record_pt record;
    ngx_http_mpns_fanout_done_pt   done;
    void                          *data;

    /* the pump's */
    ngx_http_mpns_engine_t        *engine;
    ngx_uint_t                     limit;     /* mpns_worker_concurrency */
    ngx_queue_t                    jobs;
    ngx_uint_t                     active;
    ngx_queue_t                    queue;     /* in engine->waiting */
    ngx_event_t                    wake;
    ngx_event_t                    pace;      /* mpns_rate */
    ngx_msec_t                     start;
    ngx_uint_t                     started;

    unsigned                       pumping:1;
    unsigned                       woken:1;
    unsigned                       waiting:1;
    unsigned                       exhausted:1;
    unsigned                       finished:1;
    unsigned                       blocked:1; /* the sink asks to pause */
    unsigned                       error:1;
};


ngx_int_t ngx_http_mpns_fanout_init(ngx_http_mpns_fanout_t *fo);
void ngx_http_mpns_fanout_pump(ngx_http_mpns_fanout_t *fo);
void ngx_http_mpns_fanout_cancel(ngx_http_mpns_fanout_t *fo);
void ngx_http_mpns_fanout_resume(ngx_http_mpns_store_op_t *op);

ngx_int_t ngx_http_mpns_job_ready(ngx_http_mpns_job_t *job,
    ngx_http_mpns_loc_conf_t *mlcf, ngx_http_core_loc_conf_t *clcf,
    ngx_http_mpns_message_t *msg, ngx_str_t *channel,
    ngx_http_mpns_error_t *err);


#endif /* _NGX_HTTP_MPNS_FANOUT_H_INCLUDED_ */
