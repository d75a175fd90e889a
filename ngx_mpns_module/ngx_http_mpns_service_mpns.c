
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_mpns_module.h"


/*
 * The Microsoft Push Notification Service: its fields and payloads, the
 * request headers it reads, the status headers it answers with, and what
 * its answers mean (docs/protocol.md).
 */


/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
#define NGX_HTTP_MPNS_UUID_LEN    36

/* the response headers kept, indexes into response->headers */
#define NGX_HTTP_MPNS_H_NOTIFICATION_STATUS       0
#define NGX_HTTP_MPNS_H_SUBSCRIPTION_STATUS       1
#define NGX_HTTP_MPNS_H_DEVICE_CONNECTION_STATUS  2
#define NGX_HTTP_MPNS_H_MESSAGE_ID                3

/* what MPNS takes as a callback message */
#define NGX_HTTP_MPNS_MAX_CALLBACK                1024

/* batching interval, the tens digit of X-NotificationClass */
#define NGX_HTTP_MPNS_CLASS_IMMEDIATE             0
#define NGX_HTTP_MPNS_CLASS_450                   10
#define NGX_HTTP_MPNS_CLASS_900                   20

/* MPNS: exponential backoff, at most an hour apart */
#define NGX_HTTP_MPNS_MAX_BACKOFF       3600000


typedef struct {
    ngx_str_t                   name;
    ngx_uint_t                  type;
    ngx_uint_t                  notification_class;
    ngx_str_t                   target;
    ngx_str_t                   template;      /* WP8 "Template", or empty */
    ngx_uint_t                 *order;         /* elements, MSDN order */
} ngx_http_mpns_type_t;


static ngx_http_mpns_type_t *ngx_http_mpns_type_lookup(ngx_uint_t type);
static ngx_int_t ngx_http_mpns_xml(ngx_pool_t *pool,
    ngx_http_mpns_spec_t *spec, ngx_http_mpns_type_t *t, size_t max_payload,
    ngx_str_t *body);
static ngx_int_t ngx_http_mpns_valid_text(ngx_str_t *s);
static ngx_int_t ngx_http_mpns_flag(ngx_str_t *s);
static ngx_int_t ngx_http_mpns_count(ngx_str_t *s);
static ngx_int_t ngx_http_mpns_class(ngx_str_t *s);
static ngx_int_t ngx_http_mpns_valid_uuid(ngx_str_t *s);
static ngx_int_t ngx_http_mpns_valid_color(ngx_str_t *s);
static ngx_int_t ngx_http_mpns_message_id(ngx_pool_t *pool, ngx_str_t *id,
    u_char *random,    ngx_str_t *out);
static ngx_int_t ngx_http_mpns_empty(ngx_str_t *s);
static uintptr_t ngx_http_mpns_element(u_char *dst,
    ngx_http_mpns_spec_t *spec, ngx_uint_t field);
static uintptr_t ngx_http_mpns_escape(u_char *dst, u_char *src, size_t size,
    ngx_uint_t attribute);
static ngx_int_t ngx_http_mpns_mpns_callback_request(ngx_pool_t *pool,
    ngx_http_mpns_message_t *msg, ngx_http_mpns_target_t *target,
    ngx_str_t *out);
static ngx_int_t ngx_http_mpns_error(ngx_http_mpns_error_t *err,
    ngx_uint_t status, const char *text, ngx_uint_t field);

static ngx_int_t ngx_http_mpns_mpns_field_index(ngx_str_t *name);
static ngx_http_mpns_field_t *ngx_http_mpns_mpns_field(ngx_uint_t index);
static ngx_int_t ngx_http_mpns_mpns_type(ngx_str_t *name);
static ngx_str_t *ngx_http_mpns_mpns_type_name(ngx_uint_t type);
static ngx_int_t ngx_http_mpns_mpns_build(ngx_pool_t *pool,
    ngx_http_mpns_spec_t *spec, size_t max_payload,
    ngx_http_mpns_message_t *msg, ngx_http_mpns_error_t *err);
static ngx_int_t ngx_http_mpns_mpns_create_request(ngx_pool_t *pool,
    ngx_http_mpns_message_t *msg, ngx_http_mpns_target_t *target,
    ngx_str_t *out);
static ngx_uint_t ngx_http_mpns_mpns_classify(
    ngx_http_mpns_response_t *resp);
static ngx_uint_t ngx_http_mpns_mpns_retryable(ngx_uint_t outcome);
static ngx_uint_t ngx_http_mpns_mpns_shown(ngx_http_mpns_response_t *resp);
static ngx_msec_t ngx_http_mpns_mpns_backoff(ngx_http_mpns_outbox_conf_t *oc,
    ngx_uint_t outcome, ngx_uint_t attempts);


static ngx_http_mpns_header_t  ngx_http_mpns_mpns_headers[] = {

    { ngx_string("x-notificationstatus"),
      ngx_string("X-NotificationStatus"),
      ngx_string("notification_status") },

    { ngx_string("x-subscriptionstatus"),
      ngx_string("X-SubscriptionStatus"),
      ngx_string("subscription_status") },

    { ngx_string("x-deviceconnectionstatus"),
      ngx_string("X-DeviceConnectionStatus"),
      ngx_string("device_connection_status") },

    /* repeated to the client; the answer's "message_id" is ours */
    { ngx_string("x-messageid"),
      ngx_string("X-MessageID"),
      ngx_null_string }
};


ngx_http_mpns_service_t  ngx_http_mpns_service_mpns = {
    ngx_string("mpns"),
    ngx_http_mpns_mpns_field_index,
    ngx_http_mpns_mpns_field,
    ngx_http_mpns_mpns_type,
    ngx_http_mpns_mpns_type_name,
    ngx_http_mpns_mpns_build,
    ngx_http_mpns_mpns_create_request,
    NULL,
    ngx_http_mpns_mpns_headers,
    sizeof(ngx_http_mpns_mpns_headers) / sizeof(ngx_http_mpns_header_t),
    ngx_http_mpns_mpns_classify,
    ngx_http_mpns_mpns_retryable,
    ngx_http_mpns_mpns_backoff,
    ngx_http_mpns_mpns_shown
};


static ngx_http_mpns_field_t  ngx_http_mpns_fields[NGX_HTTP_MPNS_NFIELDS] = {

    { ngx_string("type"), ngx_null_string, ngx_null_string,
      NGX_HTTP_MPNS_ANY_TYPE|NGX_HTTP_MPNS_CALLBACK },

    { ngx_string("channel"), ngx_null_string, ngx_null_string,
      NGX_HTTP_MPNS_ANY_TYPE|NGX_HTTP_MPNS_CALLBACK },

    { ngx_string("class"), ngx_null_string, ngx_null_string,
      NGX_HTTP_MPNS_ANY_TYPE },

    { ngx_string("message_id"), ngx_string("messageId"), ngx_null_string,
      NGX_HTTP_MPNS_ANY_TYPE },

    { ngx_string("clear"), ngx_null_string, ngx_null_string,
      NGX_HTTP_MPNS_ANY_TILE },

    { ngx_string("payload"), ngx_null_string, ngx_null_string,
      NGX_HTTP_MPNS_RAW|NGX_HTTP_MPNS_CALLBACK },

    { ngx_string("text1"), ngx_null_string, ngx_string("Text1"),
      NGX_HTTP_MPNS_TOAST },

    { ngx_string("text2"), ngx_null_string, ngx_string("Text2"),
      NGX_HTTP_MPNS_TOAST },

    { ngx_string("sound"), ngx_null_string, ngx_string("Sound"),
      NGX_HTTP_MPNS_TOAST },

    /* emitted as <wp:Sound Silent="true"/> */
    { ngx_string("silent"), ngx_null_string, ngx_null_string,
      NGX_HTTP_MPNS_TOAST },

    { ngx_string("param"), ngx_null_string, ngx_string("Param"),
      NGX_HTTP_MPNS_TOAST },

    /* the Id attribute of wp:Tile */
    { ngx_string("id"), ngx_null_string, ngx_null_string,
      NGX_HTTP_MPNS_ANY_TILE },

    { ngx_string("small_background_image"),
      ngx_string("smallBackgroundImage"),
      ngx_string("SmallBackgroundImage"),
      NGX_HTTP_MPNS_FLIP|NGX_HTTP_MPNS_CYCLE },

    { ngx_string("wide_background_image"),
      ngx_string("wideBackgroundImage"),
      ngx_string("WideBackgroundImage"),
      NGX_HTTP_MPNS_FLIP },

    { ngx_string("wide_back_background_image"),
      ngx_string("wideBackBackgroundImage"),
      ngx_string("WideBackBackgroundImage"),
      NGX_HTTP_MPNS_FLIP },

    { ngx_string("wide_back_content"),
      ngx_string("wideBackContent"),
      ngx_string("WideBackContent"),
      NGX_HTTP_MPNS_FLIP },

    { ngx_string("cycle_image1"), ngx_string("cycleImage1"),
      ngx_string("CycleImage1"), NGX_HTTP_MPNS_CYCLE },

    { ngx_string("cycle_image2"), ngx_string("cycleImage2"),
      ngx_string("CycleImage2"), NGX_HTTP_MPNS_CYCLE },

    { ngx_string("cycle_image3"), ngx_string("cycleImage3"),
      ngx_string("CycleImage3"), NGX_HTTP_MPNS_CYCLE },

    { ngx_string("cycle_image4"), ngx_string("cycleImage4"),
      ngx_string("CycleImage4"), NGX_HTTP_MPNS_CYCLE },

    { ngx_string("cycle_image5"), ngx_string("cycleImage5"),
      ngx_string("CycleImage5"), NGX_HTTP_MPNS_CYCLE },

    { ngx_string("cycle_image6"), ngx_string("cycleImage6"),
      ngx_string("CycleImage6"), NGX_HTTP_MPNS_CYCLE },

    { ngx_string("cycle_image7"), ngx_string("cycleImage7"),
      ngx_string("CycleImage7"), NGX_HTTP_MPNS_CYCLE },

    { ngx_string("cycle_image8"), ngx_string("cycleImage8"),
      ngx_string("CycleImage8"), NGX_HTTP_MPNS_CYCLE },

    { ngx_string("cycle_image9"), ngx_string("cycleImage9"),
      ngx_string("CycleImage9"), NGX_HTTP_MPNS_CYCLE },

    { ngx_string("small_icon_image"),
      ngx_string("smallIconImage"),
      ngx_string("SmallIconImage"),
      NGX_HTTP_MPNS_ICONIC },

    { ngx_string("icon_image"), ngx_string("iconImage"),
      ngx_string("IconImage"), NGX_HTTP_MPNS_ICONIC },

    { ngx_string("wide_content1"), ngx_string("wideContent1"),
      ngx_string("WideContent1"), NGX_HTTP_MPNS_ICONIC },

    { ngx_string("wide_content2"), ngx_string("wideContent2"),
      ngx_string("WideContent2"), NGX_HTTP_MPNS_ICONIC },

    { ngx_string("wide_content3"), ngx_string("wideContent3"),
      ngx_string("WideContent3"), NGX_HTTP_MPNS_ICONIC },

    { ngx_string("background_image"),
      ngx_string("backgroundImage"),
      ngx_string("BackgroundImage"),
      NGX_HTTP_MPNS_TILE|NGX_HTTP_MPNS_FLIP },

    { ngx_string("count"), ngx_null_string, ngx_string("Count"),
      NGX_HTTP_MPNS_ANY_TILE },

    { ngx_string("title"), ngx_null_string, ngx_string("Title"),
      NGX_HTTP_MPNS_ANY_TILE },

    { ngx_string("back_background_image"),
      ngx_string("backBackgroundImage"),
      ngx_string("BackBackgroundImage"),
      NGX_HTTP_MPNS_TILE|NGX_HTTP_MPNS_FLIP },

    { ngx_string("back_title"), ngx_string("backTitle"),
      ngx_string("BackTitle"), NGX_HTTP_MPNS_TILE|NGX_HTTP_MPNS_FLIP },

    { ngx_string("back_content"), ngx_string("backContent"),
      ngx_string("BackContent"), NGX_HTTP_MPNS_TILE|NGX_HTTP_MPNS_FLIP },

    { ngx_string("background_color"),
      ngx_string("backgroundColor"),
      ngx_string("BackgroundColor"),
      NGX_HTTP_MPNS_ICONIC },

    /* sent as X-CallbackURI */
    { ngx_string("callback_uri"), ngx_string("callbackUri"),
      ngx_null_string, NGX_HTTP_MPNS_CALLBACK }
};


/* element orders as documented on MSDN; silent takes the Sound position */

static ngx_uint_t  ngx_http_mpns_toast_order[] = {
    NGX_HTTP_MPNS_F_TEXT1,
    NGX_HTTP_MPNS_F_TEXT2,
    NGX_HTTP_MPNS_F_SOUND,
    NGX_HTTP_MPNS_F_SILENT,
    NGX_HTTP_MPNS_F_PARAM,
    NGX_HTTP_MPNS_NFIELDS
};


static ngx_uint_t  ngx_http_mpns_tile_order[] = {
    NGX_HTTP_MPNS_F_BACKGROUND_IMAGE,
    NGX_HTTP_MPNS_F_COUNT,
    NGX_HTTP_MPNS_F_TITLE,
    NGX_HTTP_MPNS_F_BACK_BACKGROUND_IMAGE,
    NGX_HTTP_MPNS_F_BACK_TITLE,
    NGX_HTTP_MPNS_F_BACK_CONTENT,
    NGX_HTTP_MPNS_NFIELDS
};


static ngx_uint_t  ngx_http_mpns_flip_order[] = {
    NGX_HTTP_MPNS_F_SMALL_BACKGROUND_IMAGE,
    NGX_HTTP_MPNS_F_WIDE_BACKGROUND_IMAGE,
    NGX_HTTP_MPNS_F_WIDE_BACK_BACKGROUND_IMAGE,
    NGX_HTTP_MPNS_F_WIDE_BACK_CONTENT,
    NGX_HTTP_MPNS_F_BACKGROUND_IMAGE,
    NGX_HTTP_MPNS_F_COUNT,
    NGX_HTTP_MPNS_F_TITLE,
    NGX_HTTP_MPNS_F_BACK_BACKGROUND_IMAGE,
    NGX_HTTP_MPNS_F_BACK_TITLE,
    NGX_HTTP_MPNS_F_BACK_CONTENT,
    NGX_HTTP_MPNS_NFIELDS
};


static ngx_uint_t  ngx_http_mpns_cycle_order[] = {
    NGX_HTTP_MPNS_F_SMALL_BACKGROUND_IMAGE,
    NGX_HTTP_MPNS_F_CYCLE_IMAGE1,
    NGX_HTTP_MPNS_F_CYCLE_IMAGE1 + 1,
    NGX_HTTP_MPNS_F_CYCLE_IMAGE1 + 2,
    NGX_HTTP_MPNS_F_CYCLE_IMAGE1 + 3,
    NGX_HTTP_MPNS_F_CYCLE_IMAGE1 + 4,
    NGX_HTTP_MPNS_F_CYCLE_IMAGE1 + 5,
    NGX_HTTP_MPNS_F_CYCLE_IMAGE1 + 6,
    NGX_HTTP_MPNS_F_CYCLE_IMAGE1 + 7,
    NGX_HTTP_MPNS_F_CYCLE_IMAGE1 + 8,
    NGX_HTTP_MPNS_F_COUNT,
    NGX_HTTP_MPNS_F_TITLE,
    NGX_HTTP_MPNS_NFIELDS
};


static ngx_uint_t  ngx_http_mpns_iconic_order[] = {
    NGX_HTTP_MPNS_F_SMALL_ICON_IMAGE,
    NGX_HTTP_MPNS_F_ICON_IMAGE,
    NGX_HTTP_MPNS_F_WIDE_CONTENT1,
    NGX_HTTP_MPNS_F_WIDE_CONTENT2,
    NGX_HTTP_MPNS_F_WIDE_CONTENT3,
    NGX_HTTP_MPNS_F_COUNT,
    NGX_HTTP_MPNS_F_TITLE,
    NGX_HTTP_MPNS_F_BACKGROUND_COLOR,
    NGX_HTTP_MPNS_NFIELDS
};


static ngx_uint_t  ngx_http_mpns_raw_order[] = {
    NGX_HTTP_MPNS_NFIELDS
};


static ngx_http_mpns_type_t  ngx_http_mpns_types[] = {

    { ngx_string("toast"), NGX_HTTP_MPNS_TOAST, 2,
      ngx_string("toast"), ngx_null_string, ngx_http_mpns_toast_order },

    { ngx_string("tile"), NGX_HTTP_MPNS_TILE, 1,
      ngx_string("token"), ngx_null_string, ngx_http_mpns_tile_order },

    { ngx_string("flip"), NGX_HTTP_MPNS_FLIP, 1,
      ngx_string("token"), ngx_string("FlipTile"),
      ngx_http_mpns_flip_order },

    { ngx_string("cycle"), NGX_HTTP_MPNS_CYCLE, 1,
      ngx_string("token"), ngx_string("CycleTile"),
      ngx_http_mpns_cycle_order },

    { ngx_string("iconic"), NGX_HTTP_MPNS_ICONIC, 1,
      ngx_string("token"), ngx_string("IconicTile"),
      ngx_http_mpns_iconic_order },

    /* MPNS wants no X-WindowsPhone-Target for raw */
    { ngx_string("raw"), NGX_HTTP_MPNS_RAW, 3,
      ngx_null_string, ngx_null_string, ngx_http_mpns_raw_order },

    { ngx_string("callback"), NGX_HTTP_MPNS_CALLBACK, 0,
      ngx_null_string, ngx_null_string, ngx_http_mpns_raw_order },

    { ngx_null_string, 0, 0, ngx_null_string, ngx_null_string, NULL }
};



static ngx_int_t
ngx_http_mpns_mpns_field_index(ngx_str_t *name)
{
    ngx_uint_t              i;
    ngx_http_mpns_field_t  *f;

    for (i = 0; i < NGX_HTTP_MPNS_NFIELDS; i++) {
        f = &ngx_http_mpns_fields[i];

        if (name->len == f->name.len
            && ngx_strncmp(name->data, f->name.data, name->len) == 0)
        {
            return i;
        }

        if (f->alias.len
            && name->len == f->alias.len
            && ngx_strncmp(name->data, f->alias.data, name->len) == 0)
        {
            return i;
        }
    }

    /* the spelling of node-mpns 1.x */

    if (name->len == sizeof("smallbackgroundImage") - 1
        && ngx_strncmp(name->data, "smallbackgroundImage", name->len) == 0)
    {
        return NGX_HTTP_MPNS_F_SMALL_BACKGROUND_IMAGE;
    }

    return NGX_ERROR;
}


static ngx_http_mpns_field_t *
ngx_http_mpns_mpns_field(ngx_uint_t index)
{
    if (index >= NGX_HTTP_MPNS_NFIELDS) {
        return NULL;
    }

    return &ngx_http_mpns_fields[index];
}


static ngx_int_t
ngx_http_mpns_mpns_type(ngx_str_t *name)
{
    ngx_http_mpns_type_t  *t;

    for (t = ngx_http_mpns_types; t->name.len; t++) {
        if (name->len == t->name.len
            && ngx_strncmp(name->data, t->name.data, name->len) == 0)
        {
            return t->type;
        }
    }

    return NGX_ERROR;
}


static ngx_str_t *
ngx_http_mpns_mpns_type_name(ngx_uint_t type)
{
    ngx_http_mpns_type_t  *t;

    t = ngx_http_mpns_type_lookup(type);
    if (t == NULL) {
        return NULL;
    }

    return &t->name;
}


static ngx_http_mpns_type_t *
ngx_http_mpns_type_lookup(ngx_uint_t type)
{
    ngx_http_mpns_type_t  *t;

    for (t = ngx_http_mpns_types; t->name.len; t++) {
        if (t->type == type) {
            return t;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_mpns_mpns_build(ngx_pool_t *pool, ngx_http_mpns_spec_t *spec,
    size_t max_payload, ngx_http_mpns_message_t *msg,
    ngx_http_mpns_error_t *err)
{
    u_char                *p;
    uint64_t               clear;
    ngx_int_t              n, rc, class;
    ngx_str_t             *v;
    ngx_uint_t             i, *order;
    ngx_http_mpns_type_t  *t;

    ngx_memzero(msg, sizeof(ngx_http_mpns_message_t));

    v = &spec->values[NGX_HTTP_MPNS_F_TYPE];

    if (v->data == NULL) {
        return ngx_http_mpns_error(err, 400, "missing field",
                                   NGX_HTTP_MPNS_F_TYPE);
    }

    n = ngx_http_mpns_mpns_type(v);
    if (n == NGX_ERROR) {
        return ngx_http_mpns_error(err, 400, "invalid value",
                                   NGX_HTTP_MPNS_F_TYPE);
    }

    t = ngx_http_mpns_type_lookup(n);

    for (i = 0; i < NGX_HTTP_MPNS_NFIELDS; i++) {
        v = &spec->values[i];

        if (v->data == NULL
            && !(i == NGX_HTTP_MPNS_F_CLEAR && spec->clear))
        {
            continue;
        }

        if (!(ngx_http_mpns_fields[i].types & t->type)) {
            return ngx_http_mpns_error(err, 400,
                                       "field not allowed for this type", i);
        }

        /* a raw payload is opaque to MPNS and goes out as is */

        if (i != NGX_HTTP_MPNS_F_PAYLOAD
            && v->data != NULL
            && ngx_http_mpns_valid_text(v) != NGX_OK)
        {
            return ngx_http_mpns_error(err, 400, "invalid character", i);
        }
    }

    v = &spec->values[NGX_HTTP_MPNS_F_COUNT];

    if (v->data && ngx_http_mpns_count(v) == NGX_ERROR) {
        return ngx_http_mpns_error(err, 400, "invalid value",
                                   NGX_HTTP_MPNS_F_COUNT);
    }

    /* an empty value sends an empty element, like any tile property */

    v = &spec->values[NGX_HTTP_MPNS_F_BACKGROUND_COLOR];

    if (v->len && ngx_http_mpns_valid_color(v) != NGX_OK) {
        return ngx_http_mpns_error(err, 400, "invalid value",
                                   NGX_HTTP_MPNS_F_BACKGROUND_COLOR);
    }

    v = &spec->values[NGX_HTTP_MPNS_F_SILENT];

    if (v->data) {
        n = ngx_http_mpns_flag(v);

        if (n == NGX_ERROR) {
            return ngx_http_mpns_error(err, 400, "invalid value",
                                       NGX_HTTP_MPNS_F_SILENT);
        }

        if (n && spec->values[NGX_HTTP_MPNS_F_SOUND].data) {
            return ngx_http_mpns_error(err, 400,
                                       "sound and silent are exclusive",
                                       NGX_HTTP_MPNS_F_SILENT);
        }
    }

    v = &spec->values[NGX_HTTP_MPNS_F_CLASS];

    if (v->data) {
        class = ngx_http_mpns_class(v);

        if (class == NGX_ERROR) {
            return ngx_http_mpns_error(err, 400, "invalid value",
                                       NGX_HTTP_MPNS_F_CLASS);
        }

    } else {
        class = NGX_HTTP_MPNS_CLASS_IMMEDIATE;
    }

    v = &spec->values[NGX_HTTP_MPNS_F_MESSAGE_ID];

    if (v->data && ngx_http_mpns_valid_uuid(v) != NGX_OK) {
        return ngx_http_mpns_error(err, 400, "invalid value",
                                   NGX_HTTP_MPNS_F_MESSAGE_ID);
    }

    clear = spec->clear;

    for (i = 0; clear; i++, clear >>= 1) {

        if (!(clear & 1)) {
            continue;
        }

        if (i >= NGX_HTTP_MPNS_NFIELDS
            || ngx_http_mpns_fields[i].element.len == 0
            || !(ngx_http_mpns_fields[i].types & t->type))
        {
            return ngx_http_mpns_error(err, 400, "invalid value",
                                       NGX_HTTP_MPNS_F_CLEAR);
        }

        if (spec->values[i].data) {
            return ngx_http_mpns_error(err, 400, "field both set and cleared",
                                       NGX_HTTP_MPNS_F_CLEAR);
        }
    }

    switch (t->type) {

    case NGX_HTTP_MPNS_TOAST:

        if (ngx_http_mpns_empty(&spec->values[NGX_HTTP_MPNS_F_TEXT1])
            && ngx_http_mpns_empty(&spec->values[NGX_HTTP_MPNS_F_TEXT2]))
        {
            return ngx_http_mpns_error(err, 400, "missing field",
                                       NGX_HTTP_MPNS_F_TEXT1);
        }

        break;

    case NGX_HTTP_MPNS_CALLBACK:

        if (ngx_http_mpns_empty(&spec->values[NGX_HTTP_MPNS_F_PAYLOAD])) {
            return ngx_http_mpns_error(err, 400, "missing field",
                                       NGX_HTTP_MPNS_F_PAYLOAD);
        }

        v = &spec->values[NGX_HTTP_MPNS_F_CALLBACK_URI];

        if (ngx_http_mpns_empty(v)) {
            return ngx_http_mpns_error(err, 400, "missing field",
                                       NGX_HTTP_MPNS_F_CALLBACK_URI);
        }

        /* it becomes a header line: an absolute http(s) URL, no spaces */

        for (i = 0; i < v->len; i++) {
            if (v->data[i] <= 0x20 || v->data[i] >= 0x7f) {
                return ngx_http_mpns_error(err, 400, "invalid character",
                                           NGX_HTTP_MPNS_F_CALLBACK_URI);
            }
        }

        if (v->len > NGX_HTTP_MPNS_MAX_CALLBACK
            || !((v->len > 7
                  && ngx_strncasecmp(v->data, (u_char *) "http://", 7) == 0)
                 || (v->len > 8
                     && ngx_strncasecmp(v->data, (u_char *) "https://", 8)
                        == 0)))
        {
            return ngx_http_mpns_error(err, 400, "invalid value",
                                       NGX_HTTP_MPNS_F_CALLBACK_URI);
        }

        break;

    case NGX_HTTP_MPNS_RAW:

        if (ngx_http_mpns_empty(&spec->values[NGX_HTTP_MPNS_F_PAYLOAD])) {
            return ngx_http_mpns_error(err, 400, "missing field",
                                       NGX_HTTP_MPNS_F_PAYLOAD);
        }

        /* it becomes a header line */

        v = &spec->content_type;

        for (i = 0; i < v->len; i++) {
            if (v->data[i] < 0x20 || v->data[i] == 0x7f) {
                err->status = 400;
                err->text = "invalid character";
                ngx_str_set(&err->field, "content_type");
                return NGX_DECLINED;
            }
        }

        if (v->len > NGX_HTTP_MPNS_MAX_CONTENT_TYPE) {
            err->status = 400;
            err->text = "value too long";
            ngx_str_set(&err->field, "content_type");
            return NGX_DECLINED;
        }

        break;

    default: /* tiles */

        for (order = t->order; *order != NGX_HTTP_MPNS_NFIELDS; order++) {
            if (spec->values[*order].data
                || (spec->clear & ((uint64_t) 1 << *order)))
            {
                break;
            }
        }

        if (*order == NGX_HTTP_MPNS_NFIELDS) {
            return ngx_http_mpns_error(err, 400, "empty notification",
                                       NGX_HTTP_MPNS_F_TYPE);
        }
    }

    /*
     * the size limit is reported against the "payload" field for every
     * type: it is the body that is too large, whatever it was built from
     */

    if (t->type == NGX_HTTP_MPNS_CALLBACK) {
        v = &spec->values[NGX_HTTP_MPNS_F_PAYLOAD];

        if (v->len > NGX_HTTP_MPNS_MAX_CALLBACK) {
            return ngx_http_mpns_error(err, 413, "payload too large",
                                       NGX_HTTP_MPNS_F_PAYLOAD);
        }

        msg->body.len = v->len;
        msg->body.data = ngx_pstrdup(pool, v);

        v = &spec->values[NGX_HTTP_MPNS_F_CALLBACK_URI];

        msg->callback_uri.len = v->len;
        msg->callback_uri.data = ngx_pstrdup(pool, v);

        if (msg->body.data == NULL || msg->callback_uri.data == NULL) {
            return NGX_ERROR;
        }

        ngx_str_set(&msg->content_type, "application/octet-stream");

        /* MPNS takes callbacks from authenticated services only */
        msg->single = 1;
        msg->secure = 1;

    } else if (t->type == NGX_HTTP_MPNS_RAW) {
        v = &spec->values[NGX_HTTP_MPNS_F_PAYLOAD];

        if (v->len > max_payload) {
            return ngx_http_mpns_error(err, 413, "payload too large",
                                       NGX_HTTP_MPNS_F_PAYLOAD);
        }

        /* the message may outlive the spec's buffers */

        p = ngx_pnalloc(pool, v->len + spec->content_type.len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        msg->body.len = v->len;
        msg->body.data = p;

        p = ngx_cpymem(p, v->data, v->len);

        if (spec->content_type.len) {
            msg->content_type.len = spec->content_type.len;
            msg->content_type.data = p;

            ngx_memcpy(p, spec->content_type.data, spec->content_type.len);

        } else {
            ngx_str_set(&msg->content_type, "text/xml");
        }

    } else {
        rc = ngx_http_mpns_xml(pool, spec, t, max_payload, &msg->body);

        if (rc == NGX_DECLINED) {
            return ngx_http_mpns_error(err, 413, "payload too large",
                                       NGX_HTTP_MPNS_F_PAYLOAD);
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_str_set(&msg->content_type, "text/xml");

        if (spec->values[NGX_HTTP_MPNS_F_COUNT].data) {

            /* values are escaped: this is the one Count element */

            p = ngx_strnstr(msg->body.data, "<wp:Count>", msg->body.len);

            if (p) {
                p += sizeof("<wp:Count>") - 1;
                msg->count_pos = p - msg->body.data;

                while (*p != '<') {
                    p++;
                }

                msg->count_len = p - msg->body.data - msg->count_pos;
            }
        }
    }

    v = &spec->values[NGX_HTTP_MPNS_F_MESSAGE_ID];

    if (ngx_http_mpns_message_id(pool, v, spec->random, &msg->message_id)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    msg->type = t->type;
    msg->notification_class = class + t->notification_class;
    msg->target = t->target;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_xml(ngx_pool_t *pool, ngx_http_mpns_spec_t *spec,
    ngx_http_mpns_type_t *t, size_t max_payload, ngx_str_t *body)
{
    u_char      *p;
    size_t       len;
    ngx_str_t   *id;
    ngx_uint_t   i, n, *order, fields[NGX_HTTP_MPNS_NFIELDS];

    static u_char  head[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
                            "<wp:Notification xmlns:wp=\"WPNotification\"";
    static u_char  tail[] = "</wp:Notification>";

    id = &spec->values[NGX_HTTP_MPNS_F_ID];

    /* the elements: the fields given or cleared, in the type's order */

    n = 0;

    for (order = t->order; *order != NGX_HTTP_MPNS_NFIELDS; order++) {
        if (spec->values[*order].data
            || (spec->clear & ((uint64_t) 1 << *order)))
        {
            fields[n++] = *order;
        }
    }

    len = sizeof(head) - 1 + sizeof(">") - 1 + sizeof(tail) - 1;

    if (t->template.len) {
        len += sizeof(" Version=\"2.0\"") - 1;
    }

    if (t->type == NGX_HTTP_MPNS_TOAST) {
        len += sizeof("<wp:Toast></wp:Toast>") - 1;

    } else {
        len += sizeof("<wp:Tile></wp:Tile>") - 1;

        if (id->data) {
            len += sizeof(" Id=\"\"") - 1 + id->len
                   + ngx_http_mpns_escape(NULL, id->data, id->len, 1);
        }

        if (t->template.len) {
            len += sizeof(" Template=\"\"") - 1 + t->template.len;
        }
    }

    for (i = 0; i < n; i++) {
        len += ngx_http_mpns_element(NULL, spec, fields[i]);
    }

    if (len > max_payload) {
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    p = ngx_cpymem(p, head, sizeof(head) - 1);

    if (t->template.len) {
        p = ngx_cpymem(p, " Version=\"2.0\"", sizeof(" Version=\"2.0\"") - 1);
    }

    *p++ = '>';

    if (t->type == NGX_HTTP_MPNS_TOAST) {
        p = ngx_cpymem(p, "<wp:Toast>", sizeof("<wp:Toast>") - 1);

    } else {
        p = ngx_cpymem(p, "<wp:Tile", sizeof("<wp:Tile") - 1);

        if (id->data) {
            p = ngx_cpymem(p, " Id=\"", sizeof(" Id=\"") - 1);
            p = (u_char *) ngx_http_mpns_escape(p, id->data, id->len, 1);
            *p++ = '"';
        }

        if (t->template.len) {
            p = ngx_cpymem(p, " Template=\"", sizeof(" Template=\"") - 1);
            p = ngx_cpymem(p, t->template.data, t->template.len);
            *p++ = '"';
        }

        *p++ = '>';
    }

    for (i = 0; i < n; i++) {
        p = (u_char *) ngx_http_mpns_element(p, spec, fields[i]);
    }

    if (t->type == NGX_HTTP_MPNS_TOAST) {
        p = ngx_cpymem(p, "</wp:Toast>", sizeof("</wp:Toast>") - 1);

    } else {
        p = ngx_cpymem(p, "</wp:Tile>", sizeof("</wp:Tile>") - 1);
    }

    p = ngx_cpymem(p, tail, sizeof(tail) - 1);

    if ((size_t) (p - body->data) != len) {
        return NGX_ERROR;
    }

    body->len = len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_mpns_create_request(ngx_pool_t *pool,
    ngx_http_mpns_message_t *msg, ngx_http_mpns_target_t *target,
    ngx_str_t *out)
{
    u_char  *p, *last;
    size_t   len;

    if (msg->type == NGX_HTTP_MPNS_CALLBACK) {
        return ngx_http_mpns_mpns_callback_request(pool, msg, target, out);
    }

    len = sizeof("POST  HTTP/1.1" CRLF) - 1 + target->uri.len
          + sizeof("Host: " CRLF) - 1 + target->host.len
          + sizeof("Content-Type: " CRLF) - 1 + msg->content_type.len
          + sizeof("Content-Length: " CRLF) - 1 + NGX_SIZE_T_LEN
          + sizeof("X-NotificationClass: " CRLF) - 1 + NGX_INT_T_LEN
          + sizeof("X-MessageID: " CRLF) - 1 + msg->message_id.len
          + sizeof("Accept: application/*" CRLF
                   "Connection: keep-alive" CRLF CRLF) - 1
          + msg->body.len;

    if (msg->target.len) {
        len += sizeof("X-WindowsPhone-Target: " CRLF) - 1 + msg->target.len;
    }

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    last = p + len;

    /* literal copies: this runs once per notification */

    p = ngx_cpymem(p, "POST ", sizeof("POST ") - 1);
    p = ngx_cpymem(p, target->uri.data, target->uri.len);
    p = ngx_cpymem(p, " HTTP/1.1" CRLF "Host: ",
                   sizeof(" HTTP/1.1" CRLF "Host: ") - 1);
    p = ngx_cpymem(p, target->host.data, target->host.len);
    p = ngx_cpymem(p, CRLF "Content-Type: ",
                   sizeof(CRLF "Content-Type: ") - 1);
    p = ngx_cpymem(p, msg->content_type.data, msg->content_type.len);
    p = ngx_cpymem(p, CRLF "Content-Length: ",
                   sizeof(CRLF "Content-Length: ") - 1);
    p = ngx_http_mpns_uint(p, msg->body.len);
    *p++ = CR; *p++ = LF;

    if (msg->target.len) {
        p = ngx_cpymem(p, "X-WindowsPhone-Target: ",
                       sizeof("X-WindowsPhone-Target: ") - 1);
        p = ngx_cpymem(p, msg->target.data, msg->target.len);
        *p++ = CR; *p++ = LF;
    }

    /* 1..23: two digits at most */

    p = ngx_cpymem(p, "X-NotificationClass: ",
                   sizeof("X-NotificationClass: ") - 1);

    if (msg->notification_class >= 10) {
        *p++ = (u_char) ('0' + msg->notification_class / 10);
    }

    *p++ = (u_char) ('0' + msg->notification_class % 10);
    p = ngx_cpymem(p, CRLF "X-MessageID: ", sizeof(CRLF "X-MessageID: ") - 1);
    p = ngx_cpymem(p, msg->message_id.data, msg->message_id.len);
    p = ngx_cpymem(p, CRLF "Accept: application/*" CRLF
                      "Connection: keep-alive" CRLF CRLF,
                   sizeof(CRLF "Accept: application/*" CRLF
                          "Connection: keep-alive" CRLF CRLF) - 1);

    if ((size_t) (last - p) < msg->body.len) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(p, msg->body.data, msg->body.len);

    out->len = p - out->data;

    return NGX_OK;
}


/* POST <channel>/callback with X-CallbackURI and the message (5.3) */

static ngx_int_t
ngx_http_mpns_mpns_callback_request(ngx_pool_t *pool,
    ngx_http_mpns_message_t *msg, ngx_http_mpns_target_t *target,
    ngx_str_t *out)
{
    u_char  *p, *q, *last, *end;
    size_t   len, path;

    /* "/callback" goes after the path, before a query string */

    end = target->uri.data + target->uri.len;
    q = ngx_strlchr(target->uri.data, end, '?');

    if (q == NULL) {
        q = end;
    }

    path = q - target->uri.data;

    if (path && target->uri.data[path - 1] == '/') {
        path--;
    }

    len = sizeof("POST /callback HTTP/1.1" CRLF) - 1 + target->uri.len
          + sizeof("Host: " CRLF) - 1 + target->host.len
          + sizeof("Content-Type: " CRLF) - 1 + msg->content_type.len
          + sizeof("Content-Length: " CRLF) - 1 + NGX_SIZE_T_LEN
          + sizeof("X-CallbackURI: " CRLF) - 1 + msg->callback_uri.len
          + sizeof("Accept: application/*" CRLF
                   "Connection: keep-alive" CRLF CRLF) - 1
          + msg->body.len;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    last = p + len;

    p = ngx_cpymem(p, "POST ", sizeof("POST ") - 1);
    p = ngx_cpymem(p, target->uri.data, path);
    p = ngx_cpymem(p, "/callback", sizeof("/callback") - 1);
    p = ngx_cpymem(p, q, end - q);
    p = ngx_cpymem(p, " HTTP/1.1" CRLF "Host: ",
                   sizeof(" HTTP/1.1" CRLF "Host: ") - 1);
    p = ngx_cpymem(p, target->host.data, target->host.len);
    p = ngx_cpymem(p, CRLF "Content-Type: ",
                   sizeof(CRLF "Content-Type: ") - 1);
    p = ngx_cpymem(p, msg->content_type.data, msg->content_type.len);
    p = ngx_sprintf(p, CRLF "Content-Length: %uz" CRLF "X-CallbackURI: ",
                    msg->body.len);
    p = ngx_cpymem(p, msg->callback_uri.data, msg->callback_uri.len);
    p = ngx_cpymem(p, CRLF "Accept: application/*" CRLF
                      "Connection: keep-alive" CRLF CRLF,
                   sizeof(CRLF "Accept: application/*" CRLF
                          "Connection: keep-alive" CRLF CRLF) - 1);

    if ((size_t) (last - p) < msg->body.len) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(p, msg->body.data, msg->body.len);

    out->len = p - out->data;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_mpns_mpns_classify(ngx_http_mpns_response_t *resp)
{
    ngx_str_t  *ns, *ss;

    ss = &resp->headers[NGX_HTTP_MPNS_H_SUBSCRIPTION_STATUS];

    if ((ss->len == sizeof("Expired") - 1
         && ngx_strncasecmp(ss->data, (u_char *) "Expired", ss->len) == 0)
        || resp->status == 404)
    {
        return NGX_HTTP_MPNS_EXPIRED;
    }

    switch (resp->status) {

    case 200:
        break;

    case 400:
        return NGX_HTTP_MPNS_BAD_REQUEST;

    case 401:
        return NGX_HTTP_MPNS_UNAUTHORIZED;

    case 403:
        return NGX_HTTP_MPNS_FORBIDDEN;

    case 405:
        return NGX_HTTP_MPNS_METHOD_NOT_ALLOWED;

    case 406:
        return NGX_HTTP_MPNS_THROTTLED;

    case 412:
        return NGX_HTTP_MPNS_DEVICE_INACTIVE;

    default:
        return NGX_HTTP_MPNS_UNAVAILABLE;
    }

    ns = &resp->headers[NGX_HTTP_MPNS_H_NOTIFICATION_STATUS];

    if (ns->len == sizeof("QueueFull") - 1
        && ngx_strncasecmp(ns->data, (u_char *) "QueueFull", ns->len) == 0)
    {
        return NGX_HTTP_MPNS_QUEUE_FULL;
    }

    if (ns->len == sizeof("Suppressed") - 1
        && ngx_strncasecmp(ns->data, (u_char *) "Suppressed", ns->len) == 0)
    {
        return NGX_HTTP_MPNS_SUPPRESSED;
    }

    if (ns->len == sizeof("Dropped") - 1
        && ngx_strncasecmp(ns->data, (u_char *) "Dropped", ns->len) == 0)
    {
        return NGX_HTTP_MPNS_DROPPED;
    }

    /* "Received", no header at all, or a value MPNS never documented */

    return NGX_HTTP_MPNS_DELIVERED;
}


/* Received, Active, Connected: anything else is a tile the user missed */

static ngx_uint_t
ngx_http_mpns_mpns_shown(ngx_http_mpns_response_t *resp)
{
    ngx_str_t   *h;
    ngx_uint_t   i;

    /* indexed by NGX_HTTP_MPNS_H_* */
    static ngx_str_t  shown[] = {
        ngx_string("Received"),
        ngx_string("Active"),
        ngx_string("Connected")
    };

    if (resp->status != 200) {
        return 0;
    }

    for (i = 0; i < sizeof(shown) / sizeof(ngx_str_t); i++) {
        h = &resp->headers[i];

        if (h->len != shown[i].len
            || ngx_strncasecmp(h->data, shown[i].data, h->len) != 0)
        {
            return 0;
        }
    }

    return 1;
}


/* MPNS asks for backoff on 503; a connection that failed may work again */

static ngx_uint_t
ngx_http_mpns_mpns_retryable(ngx_uint_t outcome)
{
    return outcome == NGX_HTTP_MPNS_UNAVAILABLE
           || outcome == NGX_HTTP_MPNS_TRANSPORT_ERROR
           || outcome == NGX_HTTP_MPNS_TIMEOUT;
}


static ngx_msec_t
ngx_http_mpns_mpns_backoff(ngx_http_mpns_outbox_conf_t *oc,
    ngx_uint_t outcome, ngx_uint_t attempts)
{
    ngx_uint_t  n;
    ngx_msec_t  delay;

    switch (outcome) {

    case NGX_HTTP_MPNS_QUEUE_FULL:
    case NGX_HTTP_MPNS_UNAVAILABLE:
    case NGX_HTTP_MPNS_TRANSPORT_ERROR:
    case NGX_HTTP_MPNS_TIMEOUT:
    case NGX_HTTP_MPNS_TLS_HANDSHAKE_FAILED:

        /* exponential backoff, in minute increments */

        n = attempts ? attempts - 1 : 0;
        delay = oc->backoff << ngx_min(n, 16);

        return ngx_min(delay, NGX_HTTP_MPNS_MAX_BACKOFF);

    case NGX_HTTP_MPNS_DEVICE_INACTIVE:

        /* no sooner than an hour (61 minutes) */
        return oc->device_inactive;

    case NGX_HTTP_MPNS_THROTTLED:

        /* the daily quota: hourly, until the maximum age */
        return oc->throttled;

    default:
        return 0;
    }
}


/*
 * UTF-8 without overlong forms, surrogates or code points above U+10FFFF,
 * and only the characters XML 1.0 allows
 */

static ngx_int_t
ngx_http_mpns_valid_text(ngx_str_t *s)
{
    u_char      *p, *last;
    uint32_t     u;
    ngx_uint_t   i;

    /* printable ASCII, most of any text, needs no decoding */

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < 0x20 || s->data[i] >= 0x80) {
            break;
        }
    }

    p = s->data + i;
    last = s->data + s->len;

    while (p < last) {

        u = ngx_http_mpns_json_utf8(&p, last);

        if ((u < 0x20 && u != '\t' && u != LF && u != CR)
            || u == 0xfffe
            || u == 0xffff
            || u == NGX_HTTP_MPNS_UTF8_INVALID)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_flag(ngx_str_t *s)
{
    if ((s->len == 4 && ngx_strncmp(s->data, "true", 4) == 0)
        || (s->len == 2 && ngx_strncmp(s->data, "on", 2) == 0)
        || (s->len == 1 && s->data[0] == '1'))
    {
        return 1;
    }

    if ((s->len == 5 && ngx_strncmp(s->data, "false", 5) == 0)
        || (s->len == 3 && ngx_strncmp(s->data, "off", 3) == 0)
        || (s->len == 1 && s->data[0] == '0'))
    {
        return 0;
    }

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_mpns_count(ngx_str_t *s)
{
    if (s->len == 0 || s->len > 2) {
        return NGX_ERROR;
    }

    /* ngx_atoi() accepts digits only */

    return ngx_atoi(s->data, s->len);
}


static ngx_int_t
ngx_http_mpns_class(ngx_str_t *s)
{
    if ((s->len == 9 && ngx_strncmp(s->data, "immediate", 9) == 0)
        || (s->len == 1 && s->data[0] == '0'))
    {
        return NGX_HTTP_MPNS_CLASS_IMMEDIATE;
    }

    if (s->len == 3 && ngx_strncmp(s->data, "450", 3) == 0) {
        return NGX_HTTP_MPNS_CLASS_450;
    }

    if (s->len == 3 && ngx_strncmp(s->data, "900", 3) == 0) {
        return NGX_HTTP_MPNS_CLASS_900;
    }

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_mpns_valid_uuid(ngx_str_t *s)
{
    u_char      ch;
    ngx_uint_t  i;

    if (s->len != NGX_HTTP_MPNS_UUID_LEN) {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_MPNS_UUID_LEN; i++) {
        ch = s->data[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-') {
                return NGX_ERROR;
            }

            continue;
        }

        ch = ngx_tolower(ch);

        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* "#AARRGGBB" */

static ngx_int_t
ngx_http_mpns_valid_color(ngx_str_t *s)
{
    u_char      ch;
    ngx_uint_t  i;

    if (s->len != sizeof("#AARRGGBB") - 1 || s->data[0] != '#') {
        return NGX_ERROR;
    }

    for (i = 1; i < s->len; i++) {
        ch = ngx_tolower(s->data[i]);

        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_message_id(ngx_pool_t *pool, ngx_str_t *id, u_char *random,
    ngx_str_t *out)
{
    u_char      *p, rnd[16];
    ngx_uint_t   i;

    static u_char  hex[] = "0123456789abcdef";

    p = ngx_pnalloc(pool, NGX_HTTP_MPNS_UUID_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->len = NGX_HTTP_MPNS_UUID_LEN;
    out->data = p;

    if (id->data) {
        ngx_strlow(p, id->data, NGX_HTTP_MPNS_UUID_LEN);
        return NGX_OK;
    }

    if (random == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(rnd, random, sizeof(rnd));

    /* RFC 4122 version 4, variant 10 */

    rnd[6] = (rnd[6] & 0x0f) | 0x40;
    rnd[8] = (rnd[8] & 0x3f) | 0x80;

    /* 8-4-4-4-12 hex digits */

    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *p++ = '-';
        }

        *p++ = hex[rnd[i] >> 4];
        *p++ = hex[rnd[i] & 0xf];
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_empty(ngx_str_t *s)
{
    return s->data == NULL || s->len == 0;
}


static uintptr_t
ngx_http_mpns_element(u_char *dst, ngx_http_mpns_spec_t *spec,
    ngx_uint_t field)
{
    ngx_str_t  *name, value;

    static u_char  silent[] = "<wp:Sound Silent=\"true\"/>";

    name = &ngx_http_mpns_fields[field].element;

    if (spec->clear & ((uint64_t) 1 << field)) {

        if (dst == NULL) {
            return sizeof("<wp: Action=\"Clear\"></wp:>") - 1 + 2 * name->len;
        }

        dst = ngx_cpymem(dst, "<wp:", sizeof("<wp:") - 1);
        dst = ngx_cpymem(dst, name->data, name->len);
        dst = ngx_cpymem(dst, " Action=\"Clear\"></wp:",
                         sizeof(" Action=\"Clear\"></wp:") - 1);
        dst = ngx_cpymem(dst, name->data, name->len);
        *dst++ = '>';

        return (uintptr_t) dst;
    }

    value = spec->values[field];

    if (value.data == NULL) {
        return (uintptr_t) dst;
    }

    if (field == NGX_HTTP_MPNS_F_SILENT) {

        if (ngx_http_mpns_flag(&value) != 1) {
            return (uintptr_t) dst;
        }

        if (dst == NULL) {
            return sizeof(silent) - 1;
        }

        return (uintptr_t) ngx_cpymem(dst, silent, sizeof(silent) - 1);
    }

    if (field == NGX_HTTP_MPNS_F_COUNT && value.len == 2
        && value.data[0] == '0')
    {
        /* "07" */
        value.data++;
        value.len--;
    }

    if (dst == NULL) {
        return sizeof("<wp:></wp:>") - 1 + 2 * name->len + value.len
               + ngx_http_mpns_escape(NULL, value.data, value.len, 0);
    }

    dst = ngx_cpymem(dst, "<wp:", sizeof("<wp:") - 1);
    dst = ngx_cpymem(dst, name->data, name->len);
    *dst++ = '>';
    dst = (u_char *) ngx_http_mpns_escape(dst, value.data, value.len, 0);
    dst = ngx_cpymem(dst, "</wp:", sizeof("</wp:") - 1);
    dst = ngx_cpymem(dst, name->data, name->len);
    *dst++ = '>';

    return (uintptr_t) dst;
}


/*
 * like ngx_escape_html(), but the quote is left alone in text nodes: only
 * attribute values are quoted
 */

static uintptr_t
ngx_http_mpns_escape(u_char *dst, u_char *src, size_t size,
    ngx_uint_t attribute)
{
    u_char      ch;
    ngx_uint_t  len;

    if (dst == NULL) {

        len = 0;

        while (size) {
            switch (*src++) {

            case '<':
                len += sizeof("&lt;") - 2;
                break;

            case '>':
                len += sizeof("&gt;") - 2;
                break;

            case '&':
                len += sizeof("&amp;") - 2;
                break;

            case '"':
                if (attribute) {
                    len += sizeof("&quot;") - 2;
                }

                break;

            default:
                break;
            }
            size--;
        }

        return (uintptr_t) len;
    }

    while (size) {
        ch = *src++;

        switch (ch) {

        case '<':
            *dst++ = '&'; *dst++ = 'l'; *dst++ = 't'; *dst++ = ';';
            break;

        case '>':
            *dst++ = '&'; *dst++ = 'g'; *dst++ = 't'; *dst++ = ';';
            break;

        case '&':
            *dst++ = '&'; *dst++ = 'a'; *dst++ = 'm'; *dst++ = 'p';
            *dst++ = ';';
            break;

        case '"':
            if (attribute) {
                *dst++ = '&'; *dst++ = 'q'; *dst++ = 'u'; *dst++ = 'o';
                *dst++ = 't'; *dst++ = ';';
                break;
            }

            *dst++ = ch;
            break;

        default:
            *dst++ = ch;
            break;
        }
        size--;
    }

    return (uintptr_t) dst;
}


static ngx_int_t
ngx_http_mpns_error(ngx_http_mpns_error_t *err, ngx_uint_t status,
    const char *text, ngx_uint_t field)
{
    err->status = status;
    err->text = text;
    err->field = ngx_http_mpns_fields[field].name;

    return NGX_DECLINED;
}
