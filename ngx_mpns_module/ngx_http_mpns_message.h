
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_MESSAGE_H_INCLUDED_
#define _NGX_HTTP_MPNS_MESSAGE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_mpns.h"


/* notification types; also bits in ngx_http_mpns_field_t.types */
#define NGX_HTTP_MPNS_TOAST              0x01
#define NGX_HTTP_MPNS_TILE               0x02
#define NGX_HTTP_MPNS_FLIP               0x04
#define NGX_HTTP_MPNS_CYCLE              0x08
#define NGX_HTTP_MPNS_ICONIC             0x10
#define NGX_HTTP_MPNS_RAW                0x20
/* not a notification: a callback registration (docs/protocol.md) */
#define NGX_HTTP_MPNS_CALLBACK           0x40

#define NGX_HTTP_MPNS_ANY_TILE                                               \
    (NGX_HTTP_MPNS_TILE|NGX_HTTP_MPNS_FLIP|NGX_HTTP_MPNS_CYCLE               \
     |NGX_HTTP_MPNS_ICONIC)
#define NGX_HTTP_MPNS_ANY_TYPE                                               \
    (NGX_HTTP_MPNS_TOAST|NGX_HTTP_MPNS_ANY_TILE|NGX_HTTP_MPNS_RAW)


/* field indexes: control fields first, then payload fields */
#define NGX_HTTP_MPNS_F_TYPE                      0
#define NGX_HTTP_MPNS_F_CHANNEL                   1
#define NGX_HTTP_MPNS_F_CLASS                     2
#define NGX_HTTP_MPNS_F_MESSAGE_ID                3
#define NGX_HTTP_MPNS_F_CLEAR                     4
#define NGX_HTTP_MPNS_F_PAYLOAD                   5
#define NGX_HTTP_MPNS_F_TEXT1                     6
#define NGX_HTTP_MPNS_F_TEXT2                     7
#define NGX_HTTP_MPNS_F_SOUND                     8
#define NGX_HTTP_MPNS_F_SILENT                    9
#define NGX_HTTP_MPNS_F_PARAM                     10
#define NGX_HTTP_MPNS_F_ID                        11
#define NGX_HTTP_MPNS_F_SMALL_BACKGROUND_IMAGE    12
#define NGX_HTTP_MPNS_F_WIDE_BACKGROUND_IMAGE     13
#define NGX_HTTP_MPNS_F_WIDE_BACK_BACKGROUND_IMAGE  14
#define NGX_HTTP_MPNS_F_WIDE_BACK_CONTENT         15
#define NGX_HTTP_MPNS_F_CYCLE_IMAGE1              16
/* ... NGX_HTTP_MPNS_F_CYCLE_IMAGE1 + 8 is cycle_image9 */
#define NGX_HTTP_MPNS_F_SMALL_ICON_IMAGE          25
#define NGX_HTTP_MPNS_F_ICON_IMAGE                26
#define NGX_HTTP_MPNS_F_WIDE_CONTENT1             27
#define NGX_HTTP_MPNS_F_WIDE_CONTENT2             28
#define NGX_HTTP_MPNS_F_WIDE_CONTENT3             29
#define NGX_HTTP_MPNS_F_BACKGROUND_IMAGE          30
#define NGX_HTTP_MPNS_F_COUNT                     31
#define NGX_HTTP_MPNS_F_TITLE                     32
#define NGX_HTTP_MPNS_F_BACK_BACKGROUND_IMAGE     33
#define NGX_HTTP_MPNS_F_BACK_TITLE                34
#define NGX_HTTP_MPNS_F_BACK_CONTENT              35
#define NGX_HTTP_MPNS_F_BACKGROUND_COLOR          36
#define NGX_HTTP_MPNS_F_CALLBACK_URI              37
#define NGX_HTTP_MPNS_NFIELDS                     38

/* a raw pass-through's Content-Type; an outbox entry keeps it in a byte */
#define NGX_HTTP_MPNS_MAX_CONTENT_TYPE            255


typedef struct {
    ngx_str_t                   name;      /* snake_case, as documented */
    ngx_str_t                   alias;     /* npm "mpns" camelCase, or empty */
    ngx_str_t                   element;   /* wp: element, or empty */
    ngx_uint_t                  types;     /* NGX_HTTP_MPNS_* it belongs to */
} ngx_http_mpns_field_t;


/*
 * What the caller asked for, after request/conf values were merged.
 * values[i].data == NULL means "not given"; "clear" is kept as a bit mask
 * of field indexes.
 */
typedef struct {
    ngx_str_t                   values[NGX_HTTP_MPNS_NFIELDS];
    uint64_t                    clear;
    ngx_str_t                   content_type;  /* raw only, may be empty */
    u_char                     *random;  /* 16 bytes, for a fresh message id */
} ngx_http_mpns_spec_t;


/* a caller's mistake: answered with "status" and {"error", "field"} */
typedef struct {
    ngx_uint_t                  status;
    const char                 *text;
    ngx_str_t                   field;
} ngx_http_mpns_error_t;


typedef struct ngx_http_mpns_message_s  ngx_http_mpns_message_t;

/*
 * The message of one recipient, from the message of all: "own" is made
 * in "pool".  NGX_DECLINED with "err" refuses the recipient.
 */
typedef ngx_int_t (*ngx_http_mpns_payload_pt)(ngx_http_mpns_message_t *msg,
    ngx_str_t *channel, ngx_pool_t *pool, ngx_log_t *log,
    ngx_http_mpns_message_t *own, ngx_http_mpns_error_t *err);


/* a notification ready to be POSTed to one channel */
struct ngx_http_mpns_message_s {
    ngx_uint_t                  type;
    ngx_uint_t                  notification_class;  /* 1..23 */
    ngx_str_t                   target;        /* "toast", "token" or empty */
    ngx_str_t                   content_type;
    ngx_str_t                   message_id;    /* always set, 36 chars */
    ngx_str_t                   callback_uri;  /* callback only */
    ngx_str_t                   body;

    /* the digits of a tile's count in "body"; count_len 0: none */
    size_t                      count_pos;
    size_t                      count_len;

    ngx_http_mpns_payload_pt    payload;       /* NULL: the same for all */
    void                       *data;

    /* sent after a tile the device did not show, NULL: nothing */
    ngx_http_mpns_message_t    *follow;

    unsigned                    single:1;      /* one channel, right away */
    unsigned                    secure:1;      /* https channels only */
};


/* the parts of a channel URI the request line and Host header need */
typedef struct {
    ngx_str_t                   host;          /* Host header value */
    ngx_str_t                   uri;           /* path + query, not empty */
} ngx_http_mpns_target_t;


/*
 * Outcomes, indexes into the table behind ngx_http_mpns_outcome(): what
 * a service made of its answer, then what the peer layer tells when
 * there was none (a transport outcome).
 */
#define NGX_HTTP_MPNS_DELIVERED                   0
#define NGX_HTTP_MPNS_QUEUE_FULL                  1
#define NGX_HTTP_MPNS_SUPPRESSED                  2
#define NGX_HTTP_MPNS_DROPPED                     3
#define NGX_HTTP_MPNS_BAD_REQUEST                 4
#define NGX_HTTP_MPNS_UNAUTHORIZED                5
#define NGX_HTTP_MPNS_FORBIDDEN                   6
#define NGX_HTTP_MPNS_EXPIRED                     7
#define NGX_HTTP_MPNS_METHOD_NOT_ALLOWED          8
#define NGX_HTTP_MPNS_THROTTLED                   9
#define NGX_HTTP_MPNS_DEVICE_INACTIVE             10
#define NGX_HTTP_MPNS_UNAVAILABLE                 11

#define NGX_HTTP_MPNS_TRANSPORT_ERROR             12
#define NGX_HTTP_MPNS_TIMEOUT                     13
#define NGX_HTTP_MPNS_REFUSED                     14   /* never sent */
#define NGX_HTTP_MPNS_TLS_HANDSHAKE_FAILED        15
#define NGX_HTTP_MPNS_TLS_VERIFY_FAILED           16
#define NGX_HTTP_MPNS_CERTIFICATE_REJECTED        17
#define NGX_HTTP_MPNS_NOUTCOMES                   18


typedef struct {
    ngx_str_t                   name;          /* "delivered", ... */
    ngx_str_t                   action;        /* "none", "retry", ... */
    time_t                      retry_after;   /* seconds, 0: none */
} ngx_http_mpns_outcome_t;


/*
 * What the push service answered: the status and the headers its
 * service keeps (ngx_http_mpns_service_t.headers), in the job's pool.
 */
#define NGX_HTTP_MPNS_MAX_HEADERS                 4

typedef struct {
    ngx_uint_t                  status;        /* 0: no HTTP answer */
    ngx_str_t                   headers[NGX_HTTP_MPNS_MAX_HEADERS];
} ngx_http_mpns_response_t;


ngx_http_mpns_outcome_t *ngx_http_mpns_outcome(ngx_uint_t outcome);
ngx_int_t ngx_http_mpns_outcome_by_name(ngx_str_t *name);

/* "msg"'s body with "count" for the count it has, into "dst" */
u_char *ngx_http_mpns_message_count(u_char *dst,
    ngx_http_mpns_message_t *msg, ngx_uint_t count);


#endif /* _NGX_HTTP_MPNS_MESSAGE_H_INCLUDED_ */
