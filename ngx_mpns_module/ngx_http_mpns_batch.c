
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"


ngx_int_t
ngx_http_mpns_batch_start(ngx_http_request_t *r, ngx_http_mpns_message_t *msg,
    ngx_http_mpns_targets_t *targets)
{
    return NGX_HTTP_NOT_IMPLEMENTED;
}
