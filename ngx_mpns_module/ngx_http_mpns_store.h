
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_STORE_H_INCLUDED_
#define _NGX_HTTP_MPNS_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_mpns.h"


typedef void (*ngx_http_mpns_store_handler_pt)(ngx_http_mpns_store_op_t *op);


/*
 * One operation on a store: the registry, the holds, the outbox.  An
 * operation returns its result at once, or NGX_AGAIN: the store then sets
 * "rc" and calls "handler" when it is done (a store that commits to disk
 * or asks another host first).  The shared-memory stores answer at once;
 * callers are written for both.  "op" may be NULL where the caller does
 * not wait for the result.
 */
struct ngx_http_mpns_store_op_s {
    ngx_http_mpns_store_handler_pt  handler;
    void                           *data;
    ngx_log_t                      *log;
    ngx_int_t                       rc;
};


#endif /* _NGX_HTTP_MPNS_STORE_H_INCLUDED_ */
