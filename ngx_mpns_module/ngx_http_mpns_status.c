
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"
#include "ngx_http_mpns_json.h"


/*
 * What the module did, for mpns_status and mpns_health.  Counters live in
 * one shared memory zone, a node per sending location (by its name, so a
 * reload finds them again) plus a few for the whole zone.  Senders only
 * add to them atomically; a status request copies them under the zone
 * lock, then works on the copy, so one answer is consistent in itself.
 * The figures of the other zones are read when they are asked for.
 */


#define NGX_HTTP_MPNS_STATUS_NAME       "mpns_status"
#define NGX_HTTP_MPNS_STATUS_TAG        ((void *) ngx_http_mpns_status_zone)
#define NGX_HTTP_MPNS_STATUS_SIZE       (1024 * 1024)

/* toast, tile, flip, cycle, iconic, raw, callback: bits 0 to 6 */
#define NGX_HTTP_MPNS_STATUS_TYPES      7

/* response time buckets: NGX_HTTP_MPNS_STATUS_BUCKETS - 1 bounds, +Inf */
#define NGX_HTTP_MPNS_STATUS_BUCKETS    15

/* sends in a row without an answer that make mpns_health fail */
#define NGX_HTTP_MPNS_UNANSWERED        5

#define NGX_HTTP_MPNS_STATUS_JSON       0
#define NGX_HTTP_MPNS_STATUS_PROM       1
#define NGX_HTTP_MPNS_STATUS_HTML       2

#define NGX_HTTP_MPNS_STATUS_CHUNK      16384

/* the per-zone figures of the Prometheus output */
#define NGX_HTTP_MPNS_Z_SIZE            0
#define NGX_HTTP_MPNS_Z_USED            1
#define NGX_HTTP_MPNS_Z_ENTRIES         2
#define NGX_HTTP_MPNS_Z_FULL            3
#define NGX_HTTP_MPNS_Z_HOLDS           4
#define NGX_HTTP_MPNS_Z_PENDING         5
#define NGX_HTTP_MPNS_Z_SENDING         6
#define NGX_HTTP_MPNS_Z_DONE            7
#define NGX_HTTP_MPNS_Z_EXPIRED         8
#define NGX_HTTP_MPNS_Z_DUE             9
#define NGX_HTTP_MPNS_Z_OLDEST          10
#define NGX_HTTP_MPNS_Z_LAG             11
#define NGX_HTTP_MPNS_Z_CB_PENDING      12
#define NGX_HTTP_MPNS_Z_CB_FAILING      13
#define NGX_HTTP_MPNS_Z_SAVES           14
#define NGX_HTTP_MPNS_Z_SAVE_FAILURES   15
#define NGX_HTTP_MPNS_Z_SAVE_TIME       16
#define NGX_HTTP_MPNS_Z_SAVE_DURATION   17
#define NGX_HTTP_MPNS_Z_SAVE_FAILED     18

#define ngx_http_mpns_status_word(field)                                     \
    (offsetof(ngx_http_mpns_status_counters_t, field)                        \
     / sizeof(ngx_atomic_uint_t))


/* all additive, so that totals are sums; read as words */
typedef struct {
    ngx_atomic_uint_t              notifications[NGX_HTTP_MPNS_STATUS_TYPES]
                                                [NGX_HTTP_MPNS_NOUTCOMES];
    ngx_atomic_uint_t              attempts;
    ngx_atomic_uint_t              retries;
    ngx_atomic_uint_t              held;
    ngx_atomic_uint_t              cancelled;
    ngx_atomic_uint_t              in_flight;
    ngx_atomic_uint_t              time[NGX_HTTP_MPNS_STATUS_BUCKETS];
    ngx_atomic_uint_t              time_sum;      /* ms */
    ngx_atomic_uint_t              opened;
    ngx_atomic_uint_t              reused;
    ngx_atomic_uint_t              handshakes;
    ngx_atomic_uint_t              resumed;
    ngx_atomic_uint_t              callbacks;
    ngx_atomic_uint_t              callbacks_failed;
} ngx_http_mpns_status_counters_t;


#define NGX_HTTP_MPNS_STATUS_WORDS                                           \
    (sizeof(ngx_http_mpns_status_counters_t) / sizeof(ngx_atomic_uint_t))


struct ngx_http_mpns_status_node_s {
    ngx_queue_t                    queue;
    ngx_http_mpns_status_counters_t  counters;
    size_t                         len;
    u_char                         name[1];
};


/* the saves of a registry's or an outbox's state file, by zone name */
typedef struct {
    ngx_queue_t                    queue;
    ngx_atomic_t                   saves;
    ngx_atomic_t                   failures;
    ngx_atomic_t                   last;          /* ms since the epoch */
    ngx_atomic_t                   last_ok;
    ngx_atomic_t                   duration;      /* ms */
    ngx_atomic_t                   failed;        /* the last one */
    size_t                         len;
    u_char                         name[1];
} ngx_http_mpns_status_file_t;


struct ngx_http_mpns_status_shctx_s {
    ngx_queue_t                    nodes;
    ngx_queue_t                    files;
    ngx_uint_t                     count;         /* nodes */
    ngx_uint_t                     full;
    time_t                         started;
    ngx_atomic_t                   reloads;
    ngx_atomic_t                   idle;
    ngx_atomic_t                   unanswered;    /* sends in a row */
    ngx_atomic_t                   last_answer;   /* s since the epoch */
};


struct ngx_http_mpns_status_s {
    ngx_http_mpns_status_shctx_t  *sh;
    ngx_slab_pool_t               *shpool;
    ngx_shm_zone_t                *shm_zone;
    size_t                         size;          /* mpns_status_zone */
    ngx_array_t                    slots;   /* ngx_http_mpns_status_slot_t */
    ngx_array_t                   *registries;    /* of the main conf */
    ngx_array_t                   *outboxes;
};


/* a location's figures, copied */
typedef struct {
    ngx_str_t                      name;
    ngx_http_mpns_status_counters_t  counters;
} ngx_http_mpns_status_loc_t;


/* a zone's figures */
typedef struct {
    ngx_str_t                      name;
    ngx_str_t                      kind;
    size_t                         size;
    size_t                         used;
    ngx_uint_t                     entries;
    ngx_uint_t                     full;
    ngx_uint_t                     active;        /* holds */
    ngx_http_mpns_outbox_stat_t   *outbox;
    ngx_str_t                      state;
    ngx_http_mpns_status_file_t    file;
    unsigned                       hold:1;
} ngx_http_mpns_status_zone_t;


typedef struct {
    ngx_http_mpns_status_loc_t    *locs;
    ngx_uint_t                     nlocs;
    ngx_http_mpns_status_counters_t  totals;
    ngx_http_mpns_status_zone_t   *zones;
    ngx_uint_t                     nzones;
    ngx_http_mpns_status_shctx_t   sh;            /* its counters, copied */
} ngx_http_mpns_status_snap_t;


/* the answer, built in buffers of NGX_HTTP_MPNS_STATUS_CHUNK or more */
typedef struct {
    ngx_pool_t                    *pool;
    ngx_chain_t                   *first;
    ngx_chain_t                  **last;
    ngx_buf_t                     *buf;
    off_t                          size;
} ngx_http_mpns_status_out_t;


/* a Prometheus metric; "help" NULL: more samples of the one before */
typedef struct {
    char                          *name;
    char                          *type;
    char                          *help;
    ngx_uint_t                     what;      /* a counter word, a figure */
    char                          *label;     /* another label, or NULL */
} ngx_http_mpns_status_metric_t;


static ngx_int_t ngx_http_mpns_status_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_mpns_status_node_t *ngx_http_mpns_status_node(
    ngx_http_mpns_status_t *st, ngx_str_t *name);
static ngx_http_mpns_status_file_t *ngx_http_mpns_status_file(
    ngx_http_mpns_status_shctx_t *sh, ngx_slab_pool_t *shpool,
    ngx_str_t *name);
static ngx_http_mpns_status_t *ngx_http_mpns_status_get(void);
static ngx_http_mpns_status_t *ngx_http_mpns_status_conf(ngx_conf_t *cf);
static ngx_uint_t ngx_http_mpns_status_type(ngx_uint_t type);
static ngx_int_t ngx_http_mpns_status_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_mpns_health_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_mpns_status_method(ngx_http_request_t *r,
    ngx_http_mpns_error_t *err);
static ngx_int_t ngx_http_mpns_status_format(ngx_http_request_t *r,
    ngx_uint_t *format, ngx_http_mpns_error_t *err);
static ngx_int_t ngx_http_mpns_status_snapshot(ngx_http_request_t *r,
    ngx_http_mpns_status_t *st, ngx_http_mpns_status_snap_t *snap);
static ngx_int_t ngx_http_mpns_status_zones(ngx_http_request_t *r,
    ngx_http_mpns_status_t *st, ngx_http_mpns_status_snap_t *snap);
static ngx_http_mpns_status_zone_t *ngx_http_mpns_status_add_zone(
    ngx_array_t *zones, ngx_shm_zone_t *shm_zone, char *kind);
static ngx_int_t ngx_http_mpns_status_json(ngx_http_mpns_status_out_t *o,
    ngx_http_mpns_status_snap_t *snap);
static ngx_int_t ngx_http_mpns_status_json_counters(
    ngx_http_mpns_status_out_t *o, ngx_http_mpns_status_counters_t *c);
static ngx_int_t ngx_http_mpns_status_json_zone(
    ngx_http_mpns_status_out_t *o, ngx_http_mpns_status_zone_t *z);
static ngx_int_t ngx_http_mpns_status_prom(ngx_http_mpns_status_out_t *o,
    ngx_http_mpns_status_snap_t *snap);
static ngx_int_t ngx_http_mpns_status_prom_head(
    ngx_http_mpns_status_out_t *o, char *name, char *type, char *help);
static ngx_int_t ngx_http_mpns_status_prom_locs(
    ngx_http_mpns_status_out_t *o, ngx_http_mpns_status_snap_t *snap,
    ngx_http_mpns_status_metric_t *m);
static ngx_int_t ngx_http_mpns_status_prom_zones(
    ngx_http_mpns_status_out_t *o, ngx_http_mpns_status_snap_t *snap,
    ngx_http_mpns_status_metric_t *m);
static ngx_int_t ngx_http_mpns_status_zone_value(
    ngx_http_mpns_status_zone_t *z, ngx_uint_t what, uint64_t *v,
    ngx_uint_t *ms);
static ngx_int_t ngx_http_mpns_status_print(ngx_http_mpns_status_out_t *o,
    size_t max, const char *fmt, ...);
static ngx_int_t ngx_http_mpns_status_json_str(ngx_http_mpns_status_out_t *o,
    ngx_str_t *s);
static ngx_int_t ngx_http_mpns_status_label(ngx_http_mpns_status_out_t *o,
    ngx_str_t *s);
static u_char *ngx_http_mpns_status_reserve(ngx_http_mpns_status_out_t *o,
    size_t len);
static ngx_int_t ngx_http_mpns_status_send(ngx_http_request_t *r,
    ngx_http_mpns_status_out_t *o, ngx_uint_t status, char *type);
static ngx_msec_t ngx_http_mpns_status_percentile(
    ngx_http_mpns_status_counters_t *c, ngx_uint_t permille);
static ngx_uint_t ngx_http_mpns_status_count(
    ngx_http_mpns_status_counters_t *c);


static ngx_str_t  ngx_http_mpns_status_name =
    ngx_string(NGX_HTTP_MPNS_STATUS_NAME);

/* upper bounds of the response time buckets, in ms */
static ngx_msec_t  ngx_http_mpns_status_bounds[] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000
};

/* the same, as Prometheus' "le", in seconds */
static char  *ngx_http_mpns_status_le[] = {
    "0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "5", "10", "30", "+Inf"
};


/*
 * Metrics of the Prometheus output but the notifications and the
 * histogram: a counter word of each location, or a figure of each zone.
 */

static ngx_http_mpns_status_metric_t  ngx_http_mpns_status_loc_metrics[] = {

    { "attempts_total", "counter",
      "Requests made to MPNS, retries included",
      ngx_http_mpns_status_word(attempts), NULL },

    { "retries_total", "counter",
      "Requests made to MPNS again after a 503, an error or a timeout",
      ngx_http_mpns_status_word(retries), NULL },

    { "held_total", "counter",
      "Notifications answered by mpns_hold without asking MPNS",
      ngx_http_mpns_status_word(held), NULL },

    { "cancelled_total", "counter",
      "Sends abandoned because the client went away",
      ngx_http_mpns_status_word(cancelled), NULL },

    { "sends_in_flight", "gauge",
      "Sends started and not finished, waiting for a retry included",
      ngx_http_mpns_status_word(in_flight), NULL },

    { "connections_opened_total", "counter",
      "Connections opened to MPNS (or to mpns_proxy)",
      ngx_http_mpns_status_word(opened), NULL },

    { "connections_reused_total", "counter",
      "Idle connections to MPNS reused",
      ngx_http_mpns_status_word(reused), NULL },

    { "tls_handshakes_total", "counter",
      "TLS handshakes with MPNS, full and with a session resumed",
      ngx_http_mpns_status_word(handshakes), "session=\"full\"" },

    { "tls_handshakes_total", NULL, NULL,
      ngx_http_mpns_status_word(resumed), "session=\"resumed\"" },

    { "result_callbacks_total", "counter",
      "Results POSTed to mpns_result_callback, answered 2xx (sent) or not "
      "(failed)",
      ngx_http_mpns_status_word(callbacks), "result=\"sent\"" },

    { "result_callbacks_total", NULL, NULL,
      ngx_http_mpns_status_word(callbacks_failed), "result=\"failed\"" },

    { NULL, NULL, NULL, 0, NULL }
};


static ngx_http_mpns_status_metric_t  ngx_http_mpns_status_zone_metrics[] = {

    { "zone_size_bytes", "gauge",
      "Size of a shared memory zone",
      NGX_HTTP_MPNS_Z_SIZE, NULL },

    { "zone_used_bytes", "gauge",
      "Pages of a shared memory zone in use, in bytes",
      NGX_HTTP_MPNS_Z_USED, NULL },

    { "zone_entries", "gauge",
      "Entries in a zone: channels, holds, outbox entries, locations",
      NGX_HTTP_MPNS_Z_ENTRIES, NULL },

    { "zone_full", "gauge",
      "1 if an entry found no room since the last one was removed",
      NGX_HTTP_MPNS_Z_FULL, NULL },

    { "holds_active", "gauge",
      "Channels held now by mpns_hold",
      NGX_HTTP_MPNS_Z_HOLDS, NULL },

    { "outbox_entries", "gauge",
      "Outbox entries by state",
      NGX_HTTP_MPNS_Z_PENDING, "state=\"pending\"" },

    { "outbox_entries", NULL, NULL,
      NGX_HTTP_MPNS_Z_SENDING, "state=\"sending\"" },

    { "outbox_entries", NULL, NULL,
      NGX_HTTP_MPNS_Z_DONE, "state=\"done\"" },

    { "outbox_entries", NULL, NULL,
      NGX_HTTP_MPNS_Z_EXPIRED, "state=\"expired\"" },

    { "outbox_due", "gauge",
      "Pending outbox entries whose time has come",
      NGX_HTTP_MPNS_Z_DUE, NULL },

    { "outbox_oldest_pending_seconds", "gauge",
      "Age of the oldest pending outbox entry",
      NGX_HTTP_MPNS_Z_OLDEST, NULL },

    { "outbox_lag_seconds", "gauge",
      "How long the most overdue pending outbox entry has been due",
      NGX_HTTP_MPNS_Z_LAG, NULL },

    { "outbox_callbacks_pending", "gauge",
      "Final results not yet accepted by mpns_result_callback",
      NGX_HTTP_MPNS_Z_CB_PENDING, NULL },

    { "outbox_callbacks_failing", "gauge",
      "Of those, results whose callback failed at least once",
      NGX_HTTP_MPNS_Z_CB_FAILING, NULL },

    { "state_saves_total", "counter",
      "State file saves that succeeded",
      NGX_HTTP_MPNS_Z_SAVES, NULL },

    { "state_save_failures_total", "counter",
      "State file saves that failed",
      NGX_HTTP_MPNS_Z_SAVE_FAILURES, NULL },

    { "state_last_save_timestamp_seconds", "gauge",
      "When the state file was last saved",
      NGX_HTTP_MPNS_Z_SAVE_TIME, NULL },

    { "state_last_save_duration_seconds", "gauge",
      "How long the last save took in its last turn of the event loop",
      NGX_HTTP_MPNS_Z_SAVE_DURATION, NULL },

    { "state_last_save_failed", "gauge",
      "1 if the last save of the state file failed",
      NGX_HTTP_MPNS_Z_SAVE_FAILED, NULL },

    { NULL, NULL, NULL, 0, NULL }
};


/* mpns_status and mpns_health */

char *
ngx_http_mpns_status_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    if (ngx_http_mpns_status_conf(cf) == NULL) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler == ngx_http_mpns_status_handler
        || clcf->handler == ngx_http_mpns_health_handler)
    {
        return "is duplicate";
    }

    clcf->handler = (ngx_strcmp(cmd->name.data, "mpns_health") == 0)
                    ? ngx_http_mpns_health_handler
                    : ngx_http_mpns_status_handler;

    return NGX_CONF_OK;
}


char *
ngx_http_mpns_status_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ssize_t                  size;
    ngx_str_t               *value;
    ngx_http_mpns_status_t  *st;

    st = ngx_http_mpns_status_conf(cf);
    if (st == NULL) {
        return NGX_CONF_ERROR;
    }

    if (st->size) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small", &value[1]);
        return NGX_CONF_ERROR;
    }

    st->size = size;

    return NGX_CONF_OK;
}


/* the status of this configuration, made by the first directive asking */

static ngx_http_mpns_status_t *
ngx_http_mpns_status_conf(ngx_conf_t *cf)
{
    ngx_http_mpns_main_conf_t  *mmcf;

    mmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_mpns_module);

    if (mmcf->status) {
        return mmcf->status;
    }

    mmcf->status = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpns_status_t));
    if (mmcf->status == NULL) {
        return NULL;
    }

    if (ngx_array_init(&mmcf->status->slots, cf->pool, 4,
                       sizeof(ngx_http_mpns_status_slot_t *))
        != NGX_OK)
    {
        return NULL;
    }

    mmcf->status->registries = &mmcf->registries;
    mmcf->status->outboxes = &mmcf->outboxes;

    return mmcf->status;
}


ngx_int_t
ngx_http_mpns_status_slot(ngx_conf_t *cf, ngx_http_mpns_status_slot_t **slot)
{
    ngx_uint_t                     i;
    ngx_http_mpns_status_t        *st;
    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_mpns_main_conf_t     *mmcf;
    ngx_http_mpns_status_slot_t  **slots, *s;

    mmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_mpns_module);
    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    st = mmcf->status;

    if (st == NULL) {
        *slot = NULL;
        return NGX_OK;
    }

    /* locations of the same name (in other servers) count together */

    slots = st->slots.elts;

    for (i = 0; i < st->slots.nelts; i++) {
        if (slots[i]->name.len == clcf->name.len
            && ngx_strncmp(slots[i]->name.data, clcf->name.data,
                           clcf->name.len)
               == 0)
        {
            *slot = slots[i];
            return NGX_OK;
        }
    }

    s = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpns_status_slot_t));
    if (s == NULL) {
        return NGX_ERROR;
    }

    s->name = clcf->name;

    slots = ngx_array_push(&st->slots);
    if (slots == NULL) {
        return NGX_ERROR;
    }

    *slots = s;
    *slot = s;

    return NGX_OK;
}


ngx_int_t
ngx_http_mpns_status_init(ngx_conf_t *cf)
{
    ngx_shm_zone_t             *shm_zone;
    ngx_http_mpns_status_t     *st;
    ngx_http_mpns_main_conf_t  *mmcf;

    mmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_mpns_module);

    st = mmcf->status;

    if (st == NULL) {
        return NGX_OK;
    }

    if (st->size == 0) {
        st->size = NGX_HTTP_MPNS_STATUS_SIZE;
    }

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_mpns_status_name, st->size,
                                     NGX_HTTP_MPNS_STATUS_TAG);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    st->shm_zone = shm_zone;

    shm_zone->init = ngx_http_mpns_status_init_zone;
    shm_zone->data = st;

    return NGX_OK;
}


/*
 * On a reload with the same size the counters stay; the slots of the new
 * configuration find their nodes by name.  Nodes are never freed: the
 * totals include locations that are gone.
 */

static ngx_int_t
ngx_http_mpns_status_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_mpns_status_t *ost = data;

    size_t                          len;
    ngx_uint_t                      i, n;
    ngx_shm_zone_t                **zones;
    ngx_slab_pool_t                *shpool;
    ngx_http_mpns_status_t         *st;
    ngx_http_mpns_status_slot_t   **slots;
    ngx_http_mpns_status_shctx_t   *sh;

    st = shm_zone->data;

    if (ost) {
        st->sh = ost->sh;
        st->shpool = ost->shpool;

        (void) ngx_atomic_fetch_add(&st->sh->reloads, 1);

    } else {
        shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

        sh = ngx_slab_calloc(shpool, sizeof(ngx_http_mpns_status_shctx_t));
        if (sh == NULL) {
            return NGX_ERROR;
        }

        ngx_queue_init(&sh->nodes);
        ngx_queue_init(&sh->files);
        sh->started = ngx_time();

        shpool->data = sh;

        len = sizeof(" in mpns status zone \"\"") + shm_zone->shm.name.len;

        shpool->log_ctx = ngx_slab_alloc(shpool, len);
        if (shpool->log_ctx == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(shpool->log_ctx, " in mpns status zone \"%V\"%Z",
                    &shm_zone->shm.name);

        /* a full zone is logged once per location, below */
        shpool->log_nomem = 0;

        st->sh = sh;
        st->shpool = shpool;
    }

    /* the old workers may be reading the lists */

    ngx_shmtx_lock(&st->shpool->mutex);

    slots = st->slots.elts;

    for (i = 0; i < st->slots.nelts; i++) {
        slots[i]->sh = st->sh;
        slots[i]->node = ngx_http_mpns_status_node(st, &slots[i]->name);

        if (slots[i]->node == NULL) {
            st->sh->full = 1;
            ngx_log_error(NGX_LOG_CRIT, shm_zone->shm.log, 0,
                          "mpns status zone \"%V\" is full: no figures "
                          "for location \"%V\"", &shm_zone->shm.name,
                          &slots[i]->name);
        }
    }

    for (n = 0; n < 2; n++) {
        zones = n ? st->outboxes->elts : st->registries->elts;

        for (i = 0; i < (n ? st->outboxes->nelts : st->registries->nelts);
             i++)
        {
            (void) ngx_http_mpns_status_file(st->sh, st->shpool,
                                             &zones[i]->shm.name);
        }
    }

    ngx_shmtx_unlock(&st->shpool->mutex);

    return NGX_OK;
}


/* called with the zone locked */

static ngx_http_mpns_status_node_t *
ngx_http_mpns_status_node(ngx_http_mpns_status_t *st, ngx_str_t *name)
{
    ngx_queue_t                  *q;
    ngx_http_mpns_status_node_t  *node;

    for (q = ngx_queue_head(&st->sh->nodes);
         q != ngx_queue_sentinel(&st->sh->nodes);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_mpns_status_node_t, queue);

        if (node->len == name->len
            && ngx_strncmp(node->name, name->data, name->len) == 0)
        {
            return node;
        }
    }

    node = ngx_slab_calloc_locked(st->shpool,
                                  offsetof(ngx_http_mpns_status_node_t, name)
                                  + name->len);
    if (node == NULL) {
        return NULL;
    }

    node->len = name->len;
    ngx_memcpy(node->name, name->data, name->len);

    ngx_queue_insert_tail(&st->sh->nodes, &node->queue);
    st->sh->count++;

    return node;
}


/*
 * called with the zone locked; "shpool" NULL: a worker looking, the zone
 * was set up with every state file of its configuration
 */

static ngx_http_mpns_status_file_t *
ngx_http_mpns_status_file(ngx_http_mpns_status_shctx_t *sh,
    ngx_slab_pool_t *shpool, ngx_str_t *name)
{
    ngx_queue_t                  *q;
    ngx_http_mpns_status_file_t  *f;

    for (q = ngx_queue_head(&sh->files);
         q != ngx_queue_sentinel(&sh->files);
         q = ngx_queue_next(q))
    {
        f = ngx_queue_data(q, ngx_http_mpns_status_file_t, queue);

        if (f->len == name->len
            && ngx_strncmp(f->name, name->data, name->len) == 0)
        {
            return f;
        }
    }

    if (shpool == NULL) {
        return NULL;
    }

    f = ngx_slab_calloc_locked(shpool,
                               offsetof(ngx_http_mpns_status_file_t, name)
                               + name->len);
    if (f == NULL) {
        return NULL;
    }

    f->len = name->len;
    ngx_memcpy(f->name, name->data, name->len);

    ngx_queue_insert_tail(&sh->files, &f->queue);

    return f;
}


/* the status of the running configuration, for hooks without a slot */

static ngx_http_mpns_status_t *
ngx_http_mpns_status_get(void)
{
    ngx_http_mpns_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_mpns_module);

    if (mmcf == NULL || mmcf->status == NULL || mmcf->status->sh == NULL) {
        return NULL;
    }

    return mmcf->status;
}


/* the index of a type bit, NGX_HTTP_MPNS_STATUS_TYPES if none */

static ngx_uint_t
ngx_http_mpns_status_type(ngx_uint_t type)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_MPNS_STATUS_TYPES; i++) {
        if (type == ((ngx_uint_t) 1 << i)) {
            break;
        }
    }

    return i;
}


void
ngx_http_mpns_status_start(ngx_http_mpns_status_slot_t *slot)
{
    if (slot == NULL || slot->node == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&slot->node->counters.in_flight, 1);
}


void
ngx_http_mpns_status_cancel(ngx_http_mpns_status_slot_t *slot,
    ngx_uint_t attempts)
{
    ngx_http_mpns_status_counters_t  *c;

    if (slot == NULL || slot->node == NULL || attempts == 0) {
        return;
    }

    c = &slot->node->counters;

    (void) ngx_atomic_fetch_add(&c->in_flight, (ngx_atomic_uint_t) -1);
    (void) ngx_atomic_fetch_add(&c->cancelled, 1);
}


void
ngx_http_mpns_status_result(ngx_http_mpns_status_slot_t *slot,
    ngx_uint_t type, ngx_uint_t outcome, ngx_uint_t attempts,
    ngx_msec_t elapsed)
{
    time_t                            now;
    ngx_uint_t                        t, i;
    ngx_http_mpns_status_shctx_t     *sh;
    ngx_http_mpns_status_counters_t  *c;

    if (slot == NULL || slot->node == NULL) {
        return;
    }

    t = ngx_http_mpns_status_type(type);

    if (t == NGX_HTTP_MPNS_STATUS_TYPES || outcome >= NGX_HTTP_MPNS_NOUTCOMES)
    {
        return;
    }

    c = &slot->node->counters;

    (void) ngx_atomic_fetch_add(&c->notifications[t][outcome], 1);

    if (attempts == 0) {
        if (outcome != NGX_HTTP_MPNS_REFUSED) {
            (void) ngx_atomic_fetch_add(&c->held, 1);
        }

        return;
    }

    (void) ngx_atomic_fetch_add(&c->in_flight, (ngx_atomic_uint_t) -1);
    (void) ngx_atomic_fetch_add(&c->attempts, attempts);

    if (attempts > 1) {
        (void) ngx_atomic_fetch_add(&c->retries, attempts - 1);
    }

    for (i = 0;
         i < NGX_HTTP_MPNS_STATUS_BUCKETS - 1
         && elapsed > ngx_http_mpns_status_bounds[i];
         i++)
    {
        /* void */
    }

    (void) ngx_atomic_fetch_add(&c->time[i], 1);
    (void) ngx_atomic_fetch_add(&c->time_sum, elapsed);

    /* whether MPNS answers at all, for mpns_health */

    sh = slot->sh;

    if (outcome == NGX_HTTP_MPNS_TRANSPORT_ERROR
        || outcome == NGX_HTTP_MPNS_TIMEOUT)
    {
        (void) ngx_atomic_fetch_add(&sh->unanswered, 1);
        return;
    }

    if (sh->unanswered) {
        sh->unanswered = 0;
    }

    now = ngx_time();

    if (sh->last_answer != (ngx_atomic_uint_t) now) {
        sh->last_answer = now;
    }
}


void
ngx_http_mpns_status_connection(ngx_http_mpns_status_slot_t *slot,
    ngx_uint_t reused)
{
    ngx_http_mpns_status_counters_t  *c;

    if (reused) {
        ngx_http_mpns_status_idle(slot, -1);
    }

    if (slot == NULL || slot->node == NULL) {
        return;
    }

    c = &slot->node->counters;

    (void) ngx_atomic_fetch_add(reused ? &c->reused : &c->opened, 1);
}


void
ngx_http_mpns_status_idle(ngx_http_mpns_status_slot_t *slot, ngx_int_t n)
{
    ngx_http_mpns_status_t        *st;
    ngx_http_mpns_status_shctx_t  *sh;

    if (slot) {
        sh = slot->sh;

    } else {
        st = ngx_http_mpns_status_get();

        if (st == NULL) {
            return;
        }

        sh = st->sh;
    }

    (void) ngx_atomic_fetch_add(&sh->idle, (ngx_atomic_uint_t) n);
}


void
ngx_http_mpns_status_handshake(ngx_http_mpns_status_slot_t *slot,
    ngx_uint_t resumed)
{
    ngx_http_mpns_status_counters_t  *c;

    if (slot == NULL || slot->node == NULL) {
        return;
    }

    c = &slot->node->counters;

    (void) ngx_atomic_fetch_add(resumed ? &c->resumed : &c->handshakes, 1);
}


void
ngx_http_mpns_status_callback(ngx_http_mpns_status_slot_t *slot,
    ngx_uint_t ok)
{
    ngx_http_mpns_status_counters_t  *c;

    if (slot == NULL || slot->node == NULL) {
        return;
    }

    c = &slot->node->counters;

    (void) ngx_atomic_fetch_add(ok ? &c->callbacks : &c->callbacks_failed, 1);
}


/*
 * The duration is what the save took in the worker's current turn of the
 * event loop: ngx_current_msec is when the turn began.  A registry saved
 * a slice per turn reports its last slice and the commit.
 */

void
ngx_http_mpns_status_save(ngx_str_t *name, ngx_int_t rc)
{
    ngx_msec_t                    now, duration;
    ngx_time_t                   *tp;
    struct timespec               ts;
    ngx_http_mpns_status_t       *st;
    ngx_http_mpns_status_file_t  *f;

    st = ngx_http_mpns_status_get();

    if (st == NULL) {
        return;
    }

    ngx_shmtx_lock(&st->shpool->mutex);
    f = ngx_http_mpns_status_file(st->sh, NULL, name);
    ngx_shmtx_unlock(&st->shpool->mutex);

    if (f == NULL) {
        return;
    }

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    now = (ngx_msec_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    duration = now > ngx_current_msec ? now - ngx_current_msec : 0;

    tp = ngx_timeofday();
    now = (ngx_msec_t) tp->sec * 1000 + tp->msec + duration;

    f->last = now;
    f->duration = duration;
    f->failed = (rc != NGX_OK);

    if (rc == NGX_OK) {
        f->last_ok = now;
        (void) ngx_atomic_fetch_add(&f->saves, 1);

    } else {
        (void) ngx_atomic_fetch_add(&f->failures, 1);
    }
}


static ngx_int_t
ngx_http_mpns_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_buf_t                    *b;
    ngx_uint_t                    format;
    ngx_http_mpns_status_t       *st;
    ngx_http_mpns_error_t         err;
    ngx_http_mpns_main_conf_t    *mmcf;
    ngx_http_mpns_status_out_t    out;
    ngx_http_mpns_status_snap_t   snap;

    format = NGX_HTTP_MPNS_STATUS_JSON;

    rc = ngx_http_mpns_status_method(r, &err);

    if (rc == NGX_OK) {
        rc = ngx_http_mpns_status_format(r, &format, &err);
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_mpns_send_error(r, &err);
    }

    if (rc != NGX_OK) {
        return rc;
    }

    ngx_memzero(&out, sizeof(ngx_http_mpns_status_out_t));

    out.pool = r->pool;
    out.last = &out.first;

    if (format == NGX_HTTP_MPNS_STATUS_HTML) {

        /* the page reads the JSON itself */

        b = ngx_calloc_buf(r->pool);
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->pos = ngx_http_mpns_dashboard;
        b->last = ngx_http_mpns_dashboard + ngx_http_mpns_dashboard_size;
        b->memory = 1;

        out.first = ngx_alloc_chain_link(r->pool);
        if (out.first == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        out.first->buf = b;
        out.first->next = NULL;
        out.buf = b;
        out.size = b->last - b->pos;

        return ngx_http_mpns_status_send(r, &out, NGX_HTTP_OK,
                                         "text/html; charset=utf-8");
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mpns_module);
    st = mmcf->status;

    if (ngx_http_mpns_status_snapshot(r, st, &snap) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (format == NGX_HTTP_MPNS_STATUS_PROM) {
        if (ngx_http_mpns_status_prom(&out, &snap) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_mpns_status_send(r, &out, NGX_HTTP_OK,
                                         "text/plain; version=0.0.4; "
                                         "charset=utf-8");
    }

    if (ngx_http_mpns_status_json(&out, &snap) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mpns_status_send(r, &out, NGX_HTTP_OK,
                                     "application/json");
}


/*
 * For a load balancer: 503 when a registry or outbox zone is full, the
 * last save of a state file failed, or the last sends in a row all went
 * unanswered (connection errors and timeouts).  No zone is walked.
 */

static ngx_int_t
ngx_http_mpns_health_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                    *name;
    ngx_uint_t                    i, n, failing, zones_ok, files_ok;
    ngx_shm_zone_t              **zones;
    ngx_atomic_uint_t             unanswered, last;
    ngx_http_mpns_error_t         err;
    ngx_http_mpns_status_t       *st;
    ngx_http_mpns_main_conf_t    *mmcf;
    ngx_http_mpns_status_out_t    out;
    ngx_http_mpns_status_file_t  *f;
    ngx_http_mpns_outbox_stat_t   ob;

    rc = ngx_http_mpns_status_method(r, &err);

    if (rc == NGX_DECLINED) {
        return ngx_http_mpns_send_error(r, &err);
    }

    if (rc != NGX_OK) {
        return rc;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mpns_module);
    st = mmcf->status;

    ngx_memzero(&out, sizeof(ngx_http_mpns_status_out_t));

    out.pool = r->pool;
    out.last = &out.first;

    zones_ok = 1;
    files_ok = 1;

    if (ngx_http_mpns_status_print(&out, 64, "{\"zones\":{\"full\":[")
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (n = 0; n < 2; n++) {
        zones = n ? st->outboxes->elts : st->registries->elts;

        for (i = 0; i < (n ? st->outboxes->nelts : st->registries->nelts);
             i++)
        {
            if (n) {
                ngx_http_mpns_outbox_stat(zones[i], &ob, 0);
                failing = ob.full;

            } else {
                failing = ngx_http_mpns_registry_full(
                              ngx_http_mpns_registry_get(zones[i]));
            }

            if (!failing) {
                continue;
            }

            if ((!zones_ok && ngx_http_mpns_status_print(&out, 1, ",")
                              != NGX_OK)
                || ngx_http_mpns_status_json_str(&out, &zones[i]->shm.name)
                   != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            zones_ok = 0;
        }
    }

    if (ngx_http_mpns_status_print(&out, 64, "],\"ok\":%s},"
                                   "\"state_files\":{\"failed\":[",
                                   zones_ok ? "true" : "false")
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (n = 0; n < 2; n++) {
        zones = n ? st->outboxes->elts : st->registries->elts;

        for (i = 0; i < (n ? st->outboxes->nelts : st->registries->nelts);
             i++)
        {
            name = &zones[i]->shm.name;

            ngx_shmtx_lock(&st->shpool->mutex);
            f = ngx_http_mpns_status_file(st->sh, NULL, name);
            failing = (f && f->failed);
            ngx_shmtx_unlock(&st->shpool->mutex);

            if (!failing) {
                continue;
            }

            if ((!files_ok && ngx_http_mpns_status_print(&out, 1, ",")
                              != NGX_OK)
                || ngx_http_mpns_status_json_str(&out, name) != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            files_ok = 0;
        }
    }

    unanswered = st->sh->unanswered;
    last = st->sh->last_answer;

    failing = (unanswered >= NGX_HTTP_MPNS_UNANSWERED);

    if (ngx_http_mpns_status_print(&out, 256, "],\"ok\":%s},"
                                   "\"mpns\":{\"unanswered\":%uA,"
                                   "\"last_answer\":",
                                   files_ok ? "true" : "false", unanswered)
           != NGX_OK
        || (last ? ngx_http_mpns_status_print(&out, NGX_ATOMIC_T_LEN, "%uA",
                                              last)
                 : ngx_http_mpns_status_print(&out, 4, "null"))
           != NGX_OK
        || ngx_http_mpns_status_print(&out, 64, ",\"ok\":%s},"
                                      "\"status\":\"%s\"}\n",
                                      failing ? "false" : "true",
                                      (failing || !zones_ok || !files_ok)
                                      ? "failing" : "ok")
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_mpns_status_send(r, &out,
                                     (failing || !zones_ok || !files_ok)
                                     ? NGX_HTTP_SERVICE_UNAVAILABLE
                                     : NGX_HTTP_OK,
                                     "application/json");
}


/* NGX_DECLINED: not GET or HEAD, "err" says so */

static ngx_int_t
ngx_http_mpns_status_method(ngx_http_request_t *r, ngx_http_mpns_error_t *err)
{
    ngx_int_t  rc;
    ngx_str_t  allow;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        return NGX_OK;
    }

    ngx_str_set(&allow, "GET, HEAD");

    if (ngx_http_mpns_add_header(r, "Allow", &allow) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    err->status = NGX_HTTP_NOT_ALLOWED;
    err->text = "method not allowed";
    ngx_str_set(&err->field, "method");

    return NGX_DECLINED;
}


/*
 * ?format=json|prometheus|html, else the Accept header: text/html for a
 * browser, text/plain or OpenMetrics for Prometheus; JSON otherwise.
 * NGX_DECLINED: an unknown format, "err" says so.
 */

static ngx_int_t
ngx_http_mpns_status_format(ngx_http_request_t *r, ngx_uint_t *format,
    ngx_http_mpns_error_t *err)
{
    ngx_str_t         value, vary;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    *format = NGX_HTTP_MPNS_STATUS_JSON;

    if (ngx_http_arg(r, (u_char *) "format", 6, &value) == NGX_OK) {

        if (value.len == 4 && ngx_strncmp(value.data, "json", 4) == 0) {
            *format = NGX_HTTP_MPNS_STATUS_JSON;

        } else if (value.len == 10
                   && ngx_strncmp(value.data, "prometheus", 10) == 0)
        {
            *format = NGX_HTTP_MPNS_STATUS_PROM;

        } else if (value.len == 4 && ngx_strncmp(value.data, "html", 4) == 0)
        {
            *format = NGX_HTTP_MPNS_STATUS_HTML;

        } else {
            err->status = NGX_HTTP_BAD_REQUEST;
            err->text = "invalid value";
            ngx_str_set(&err->field, "format");

            return NGX_DECLINED;
        }

        return NGX_OK;
    }

    ngx_str_set(&vary, "Accept");

    if (ngx_http_mpns_add_header(r, "Vary", &vary) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_OK;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != sizeof("Accept") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Accept",
                               sizeof("Accept") - 1)
               != 0)
        {
            continue;
        }

        if (ngx_strlcasestrn(h[i].value.data,
                             h[i].value.data + h[i].value.len,
                             (u_char *) "text/html", sizeof("text/html") - 2)
            != NULL)
        {
            *format = NGX_HTTP_MPNS_STATUS_HTML;
            return NGX_OK;
        }

        if (ngx_strlcasestrn(h[i].value.data,
                             h[i].value.data + h[i].value.len,
                             (u_char *) "text/plain",
                             sizeof("text/plain") - 2)
            != NULL
            || ngx_strlcasestrn(h[i].value.data,
                                h[i].value.data + h[i].value.len,
                                (u_char *) "openmetrics",
                                sizeof("openmetrics") - 2)
               != NULL)
        {
            *format = NGX_HTTP_MPNS_STATUS_PROM;
        }
    }
}


/* the counters of every location and the figures of every zone, copied */

static ngx_int_t
ngx_http_mpns_status_snapshot(ngx_http_request_t *r,
    ngx_http_mpns_status_t *st, ngx_http_mpns_status_snap_t *snap)
{
    ngx_uint_t                    i;
    ngx_queue_t                  *q;
    ngx_atomic_uint_t            *dst, *total;
    volatile ngx_atomic_uint_t   *src;
    ngx_http_mpns_status_loc_t   *loc;
    ngx_http_mpns_status_node_t  *node;

    ngx_memzero(snap, sizeof(ngx_http_mpns_status_snap_t));

    total = (ngx_atomic_uint_t *) &snap->totals;

    /* the master adds nodes under the lock on a reload */

    ngx_shmtx_lock(&st->shpool->mutex);

    snap->locs = ngx_palloc(r->pool, st->sh->count
                                     * sizeof(ngx_http_mpns_status_loc_t));
    if (snap->locs == NULL) {
        ngx_shmtx_unlock(&st->shpool->mutex);
        return NGX_ERROR;
    }

    for (q = ngx_queue_head(&st->sh->nodes);
         q != ngx_queue_sentinel(&st->sh->nodes)
         && snap->nlocs < st->sh->count;
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_mpns_status_node_t, queue);
        loc = &snap->locs[snap->nlocs++];

        /* names are never freed */

        loc->name.data = node->name;
        loc->name.len = node->len;

        src = (volatile ngx_atomic_uint_t *) &node->counters;
        dst = (ngx_atomic_uint_t *) &loc->counters;

        for (i = 0; i < NGX_HTTP_MPNS_STATUS_WORDS; i++) {
            dst[i] = src[i];
            total[i] += dst[i];
        }
    }

    snap->sh.count = st->sh->count;
    snap->sh.full = st->sh->full;
    snap->sh.started = st->sh->started;
    snap->sh.reloads = st->sh->reloads;
    snap->sh.idle = st->sh->idle;
    snap->sh.unanswered = st->sh->unanswered;
    snap->sh.last_answer = st->sh->last_answer;

    ngx_shmtx_unlock(&st->shpool->mutex);

    return ngx_http_mpns_status_zones(r, st, snap);
}


static ngx_int_t
ngx_http_mpns_status_zones(ngx_http_request_t *r, ngx_http_mpns_status_t *st,
    ngx_http_mpns_status_snap_t *snap)
{
    ngx_uint_t                     i, n, entries, active;
    ngx_array_t                    zones;
    ngx_list_part_t               *part;
    ngx_shm_zone_t               **list, *shm_zone;
    ngx_http_mpns_registry_t      *reg;
    ngx_http_mpns_status_file_t   *f;
    ngx_http_mpns_status_zone_t   *z;

    if (ngx_array_init(&zones, r->pool, 4,
                       sizeof(ngx_http_mpns_status_zone_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    list = st->registries->elts;

    for (i = 0; i < st->registries->nelts; i++) {
        z = ngx_http_mpns_status_add_zone(&zones, list[i], "registry");
        if (z == NULL) {
            return NGX_ERROR;
        }

        reg = ngx_http_mpns_registry_get(list[i]);

        z->entries = ngx_http_mpns_registry_count(reg);
        z->full = ngx_http_mpns_registry_full(reg);
        z->state = *ngx_http_mpns_registry_state(reg);
    }

    part = (ngx_list_part_t *) &ngx_cycle->shared_memory.part;
    shm_zone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            shm_zone = part->elts;
            i = 0;
        }

        if (ngx_http_mpns_hold_stat(&shm_zone[i], &entries, &active)
            != NGX_OK)
        {
            continue;
        }

        z = ngx_http_mpns_status_add_zone(&zones, &shm_zone[i], "hold");
        if (z == NULL) {
            return NGX_ERROR;
        }

        z->entries = entries;
        z->active = active;
        z->hold = 1;
    }

    list = st->outboxes->elts;

    for (i = 0; i < st->outboxes->nelts; i++) {
        z = ngx_http_mpns_status_add_zone(&zones, list[i], "outbox");
        if (z == NULL) {
            return NGX_ERROR;
        }

        z->outbox = ngx_palloc(r->pool, sizeof(ngx_http_mpns_outbox_stat_t));
        if (z->outbox == NULL) {
            return NGX_ERROR;
        }

        ngx_http_mpns_outbox_stat(list[i], z->outbox, 1);

        z->entries = z->outbox->entries;
        z->full = z->outbox->full;
        z->state = z->outbox->state;
    }

    z = ngx_http_mpns_status_add_zone(&zones, st->shm_zone, "status");
    if (z == NULL) {
        return NGX_ERROR;
    }

    z->entries = snap->sh.count;
    z->full = snap->sh.full;

    /* the saves of the state files */

    z = zones.elts;

    for (n = 0; n < zones.nelts; n++) {
        if (z[n].state.len == 0) {
            continue;
        }

        ngx_shmtx_lock(&st->shpool->mutex);

        f = ngx_http_mpns_status_file(st->sh, NULL, &z[n].name);

        if (f) {
            z[n].file.saves = f->saves;
            z[n].file.failures = f->failures;
            z[n].file.last = f->last;
            z[n].file.last_ok = f->last_ok;
            z[n].file.duration = f->duration;
            z[n].file.failed = f->failed;
        }

        ngx_shmtx_unlock(&st->shpool->mutex);
    }

    snap->zones = zones.elts;
    snap->nzones = zones.nelts;

    return NGX_OK;
}


static ngx_http_mpns_status_zone_t *
ngx_http_mpns_status_add_zone(ngx_array_t *zones, ngx_shm_zone_t *shm_zone,
    char *kind)
{
    ngx_uint_t                    pages, free;
    ngx_slab_pool_t              *shpool;
    ngx_http_mpns_status_zone_t  *z;

    z = ngx_array_push(zones);
    if (z == NULL) {
        return NULL;
    }

    ngx_memzero(z, sizeof(ngx_http_mpns_status_zone_t));

    z->name = shm_zone->shm.name;
    z->kind.data = (u_char *) kind;
    z->kind.len = ngx_strlen(kind);
    z->size = shm_zone->shm.size;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    pages = shpool->last - shpool->pages;
    free = shpool->pfree;

    ngx_shmtx_unlock(&shpool->mutex);

    z->used = (pages - free) * ngx_pagesize;

    return z;
}


static ngx_int_t
ngx_http_mpns_status_json(ngx_http_mpns_status_out_t *o,
    ngx_http_mpns_status_snap_t *snap)
{
    ngx_uint_t  i;

    if (ngx_http_mpns_status_print(o, 256,
                                   "{\"nginx_version\":\"" NGINX_VERSION "\","
                                   "\"pid\":%P,\"time\":%M,\"since\":%T,"
                                   "\"reloads\":%uA,\"totals\":",
                                   ngx_pid, ngx_http_mpns_outbox_now(),
                                   snap->sh.started, snap->sh.reloads)
           != NGX_OK
        || ngx_http_mpns_status_json_counters(o, &snap->totals) != NGX_OK
        || ngx_http_mpns_status_print(o, 16, ",\"locations\":{") != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < snap->nlocs; i++) {
        if ((i && ngx_http_mpns_status_print(o, 1, ",") != NGX_OK)
            || ngx_http_mpns_status_json_str(o, &snap->locs[i].name)
               != NGX_OK
            || ngx_http_mpns_status_print(o, 1, ":") != NGX_OK
            || ngx_http_mpns_status_json_counters(o, &snap->locs[i].counters)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_mpns_status_print(o, 256,
                                   "},\"connections\":{\"idle\":%A},"
                                   "\"mpns\":{\"unanswered\":%uA,"
                                   "\"last_answer\":",
                                   (ngx_atomic_int_t) snap->sh.idle,
                                   snap->sh.unanswered)
           != NGX_OK
        || (snap->sh.last_answer
            ? ngx_http_mpns_status_print(o, NGX_ATOMIC_T_LEN, "%uA",
                                         snap->sh.last_answer)
            : ngx_http_mpns_status_print(o, 4, "null"))
           != NGX_OK
        || ngx_http_mpns_status_print(o, 16, "},\"zones\":{") != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < snap->nzones; i++) {
        if ((i && ngx_http_mpns_status_print(o, 1, ",") != NGX_OK)
            || ngx_http_mpns_status_json_zone(o, &snap->zones[i]) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_mpns_status_print(o, 3, "}}\n");
}


static ngx_int_t
ngx_http_mpns_status_json_counters(ngx_http_mpns_status_out_t *o,
    ngx_http_mpns_status_counters_t *c)
{
    ngx_int_t          in_flight;
    ngx_str_t         *name;
    ngx_msec_t         p;
    ngx_uint_t         t, i, n, total, sum[NGX_HTTP_MPNS_STATUS_TYPES];
    ngx_atomic_uint_t  cum;

    static ngx_uint_t  permille[] = { 500, 900, 990 };

    total = 0;

    for (t = 0; t < NGX_HTTP_MPNS_STATUS_TYPES; t++) {
        sum[t] = 0;

        for (i = 0; i < NGX_HTTP_MPNS_NOUTCOMES; i++) {
            sum[t] += c->notifications[t][i];
        }

        total += sum[t];
    }

    if (ngx_http_mpns_status_print(o, 64, "{\"notifications\":%ui,"
                                   "\"outcomes\":{", total)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_MPNS_NOUTCOMES; i++) {
        for (n = 0, t = 0; t < NGX_HTTP_MPNS_STATUS_TYPES; t++) {
            n += c->notifications[t][i];
        }

        if (ngx_http_mpns_status_print(o, 64, "%s\"%V\":%ui", i ? "," : "",
                                       &ngx_http_mpns_outcome(i)->name, n)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_mpns_status_print(o, 16, "},\"types\":{") != NGX_OK) {
        return NGX_ERROR;
    }

    for (n = 0, t = 0; t < NGX_HTTP_MPNS_STATUS_TYPES; t++) {
        if (sum[t] == 0) {
            continue;
        }

        name = ngx_http_mpns_service_mpns.type_name((ngx_uint_t) 1 << t);

        if (ngx_http_mpns_status_print(o, 64, "%s\"%V\":{", n++ ? "," : "",
                                       name)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        for (i = 0; i < NGX_HTTP_MPNS_NOUTCOMES; i++) {
            if (ngx_http_mpns_status_print(o, 64, "%s\"%V\":%uA",
                                           i ? "," : "",
                                           &ngx_http_mpns_outcome(i)->name,
                                           c->notifications[t][i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        if (ngx_http_mpns_status_print(o, 1, "}") != NGX_OK) {
            return NGX_ERROR;
        }
    }

    /* a send started and not finished is never read as negative */

    in_flight = (ngx_int_t) c->in_flight;

    if (ngx_http_mpns_status_print(o, 512,
                                   "},\"attempts\":%uA,\"retries\":%uA,"
                                   "\"held\":%uA,\"cancelled\":%uA,"
                                   "\"in_flight\":%i,"
                                   "\"response_time\":{\"count\":%ui,"
                                   "\"sum_ms\":%uA",
                                   c->attempts, c->retries, c->held,
                                   c->cancelled, ngx_max(in_flight, 0),
                                   ngx_http_mpns_status_count(c),
                                   c->time_sum)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < 3; i++) {
        p = ngx_http_mpns_status_percentile(c, permille[i]);

        if ((p == (ngx_msec_t) -1
             ? ngx_http_mpns_status_print(o, 16, ",\"p%ui_ms\":null",
                                          permille[i] / 10)
             : ngx_http_mpns_status_print(o, 64, ",\"p%ui_ms\":%M",
                                          permille[i] / 10, p))
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_mpns_status_print(o, 16, ",\"buckets\":{") != NGX_OK) {
        return NGX_ERROR;
    }

    for (cum = 0, i = 0; i < NGX_HTTP_MPNS_STATUS_BUCKETS; i++) {
        cum += c->time[i];

        if ((i < NGX_HTTP_MPNS_STATUS_BUCKETS - 1
             ? ngx_http_mpns_status_print(o, 64, "\"%M\":%uA,",
                                          ngx_http_mpns_status_bounds[i],
                                          cum)
             : ngx_http_mpns_status_print(o, 64, "\"+Inf\":%uA", cum))
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_mpns_status_print(o, 512,
                                      "}},\"connections\":{\"opened\":%uA,"
                                      "\"reused\":%uA},"
                                      "\"tls_handshakes\":{\"full\":%uA,"
                                      "\"resumed\":%uA},"
                                      "\"callbacks\":{\"sent\":%uA,"
                                      "\"failed\":%uA}}",
                                      c->opened, c->reused, c->handshakes,
                                      c->resumed, c->callbacks,
                                      c->callbacks_failed);
}


static ngx_int_t
ngx_http_mpns_status_json_zone(ngx_http_mpns_status_out_t *o,
    ngx_http_mpns_status_zone_t *z)
{
    ngx_http_mpns_outbox_stat_t  *ob;

    if (ngx_http_mpns_status_json_str(o, &z->name) != NGX_OK
        || ngx_http_mpns_status_print(o, 256,
                                      ":{\"kind\":\"%V\",\"size\":%uz,"
                                      "\"used\":%uz,\"entries\":%ui,"
                                      "\"full\":%s",
                                      &z->kind, z->size, z->used, z->entries,
                                      z->full ? "true" : "false")
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (z->hold
        && ngx_http_mpns_status_print(o, 64, ",\"active\":%ui", z->active)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ob = z->outbox;

    if (ob
        && ngx_http_mpns_status_print(o, 512,
                                      ",\"pending\":%ui,\"due\":%ui,"
                                      "\"sending\":%ui,\"done\":%ui,"
                                      "\"expired\":%ui,"
                                      "\"oldest_pending_ms\":%M,"
                                      "\"lag_ms\":%M,"
                                      "\"callbacks_pending\":%ui,"
                                      "\"callbacks_failing\":%ui",
                                      ob->pending, ob->due, ob->sending,
                                      ob->done, ob->expired,
                                      ob->oldest_pending, ob->lag,
                                      ob->callbacks_pending,
                                      ob->callbacks_failing)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (z->state.len) {
        if (ngx_http_mpns_status_print(o, 32, ",\"state_file\":{\"path\":")
               != NGX_OK
            || ngx_http_mpns_status_json_str(o, &z->state) != NGX_OK
            || ngx_http_mpns_status_print(o, 128,
                                          ",\"saves\":%uA,\"failures\":%uA,"
                                          "\"last_save\":",
                                          z->file.saves, z->file.failures)
               != NGX_OK
            || (z->file.last
                ? ngx_http_mpns_status_print(o, NGX_ATOMIC_T_LEN, "%uA",
                                             z->file.last)
                : ngx_http_mpns_status_print(o, 4, "null"))
               != NGX_OK
            || ngx_http_mpns_status_print(o, 32, ",\"last_success\":")
               != NGX_OK
            || (z->file.last_ok
                ? ngx_http_mpns_status_print(o, NGX_ATOMIC_T_LEN, "%uA",
                                             z->file.last_ok)
                : ngx_http_mpns_status_print(o, 4, "null"))
               != NGX_OK
            || ngx_http_mpns_status_print(o, 128,
                                          ",\"last_duration_ms\":%uA,"
                                          "\"last_failed\":%s}",
                                          z->file.duration,
                                          z->file.failed ? "true" : "false")
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return ngx_http_mpns_status_print(o, 1, "}");
}


static ngx_int_t
ngx_http_mpns_status_prom(ngx_http_mpns_status_out_t *o,
    ngx_http_mpns_status_snap_t *snap)
{
    ngx_str_t                        *type;
    ngx_uint_t                        i, t, k, n;
    ngx_atomic_uint_t                 cum;
    ngx_http_mpns_status_loc_t       *loc;
    ngx_http_mpns_status_metric_t    *m;
    ngx_http_mpns_status_counters_t  *c;

    if (ngx_http_mpns_status_prom_head(o, "notifications_total", "counter",
                                       "Notifications by location, type and "
                                       "outcome: answers of MPNS, and of a "
                                       "hold")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < snap->nlocs; i++) {
        loc = &snap->locs[i];
        c = &loc->counters;

        for (t = 0; t < NGX_HTTP_MPNS_STATUS_TYPES; t++) {

            for (n = 0, k = 0; k < NGX_HTTP_MPNS_NOUTCOMES; k++) {
                n += c->notifications[t][k];
            }

            if (n == 0) {
                continue;
            }

            type = ngx_http_mpns_service_mpns.type_name((ngx_uint_t) 1 << t);

            for (k = 0; k < NGX_HTTP_MPNS_NOUTCOMES; k++) {
                if (ngx_http_mpns_status_print(o, 64,
                                               "nginx_mpns_notifications_total"
                                               "{location=\"")
                       != NGX_OK
                    || ngx_http_mpns_status_label(o, &loc->name) != NGX_OK
                    || ngx_http_mpns_status_print(o, 128,
                                                  "\",type=\"%V\","
                                                  "outcome=\"%V\"} %uA\n",
                                                  type,
                                                  &ngx_http_mpns_outcome(k)
                                                   ->name,
                                                  c->notifications[t][k])
                       != NGX_OK)
                {
                    return NGX_ERROR;
                }
            }
        }
    }

    if (ngx_http_mpns_status_prom_head(o, "response_time_seconds",
                                       "histogram",
                                       "Time from the start of a send to its "
                                       "result, retries included")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < snap->nlocs; i++) {
        loc = &snap->locs[i];
        c = &loc->counters;

        for (cum = 0, k = 0; k < NGX_HTTP_MPNS_STATUS_BUCKETS; k++) {
            cum += c->time[k];

            if (ngx_http_mpns_status_print(o, 64,
                                           "nginx_mpns_response_time_seconds"
                                           "_bucket{location=\"")
                   != NGX_OK
                || ngx_http_mpns_status_label(o, &loc->name) != NGX_OK
                || ngx_http_mpns_status_print(o, 64, "\",le=\"%s\"} %uA\n",
                                              ngx_http_mpns_status_le[k], cum)
                   != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        if (ngx_http_mpns_status_print(o, 64,
                                       "nginx_mpns_response_time_seconds_sum"
                                       "{location=\"")
               != NGX_OK
            || ngx_http_mpns_status_label(o, &loc->name) != NGX_OK
            || ngx_http_mpns_status_print(o, 64, "\"} %uA.%03uA\n",
                                          c->time_sum / 1000,
                                          c->time_sum % 1000)
               != NGX_OK
            || ngx_http_mpns_status_print(o, 64,
                                          "nginx_mpns_response_time_seconds"
                                          "_count{location=\"")
               != NGX_OK
            || ngx_http_mpns_status_label(o, &loc->name) != NGX_OK
            || ngx_http_mpns_status_print(o, 64, "\"} %uA\n", cum)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    for (m = ngx_http_mpns_status_loc_metrics; m->name; m++) {
        if (ngx_http_mpns_status_prom_locs(o, snap, m) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_mpns_status_prom_head(o, "connections_idle", "gauge",
                                       "Idle connections to MPNS kept by all "
                                       "workers")
           != NGX_OK
        || ngx_http_mpns_status_print(o, 64,
                                      "nginx_mpns_connections_idle %A\n",
                                      (ngx_atomic_int_t) snap->sh.idle)
           != NGX_OK
        || ngx_http_mpns_status_prom_head(o, "unanswered_sends", "gauge",
                                          "The last sends in a row that got "
                                          "no answer: connection errors and "
                                          "timeouts")
           != NGX_OK
        || ngx_http_mpns_status_print(o, 64,
                                      "nginx_mpns_unanswered_sends %uA\n",
                                      snap->sh.unanswered)
           != NGX_OK
        || ngx_http_mpns_status_prom_head(o, "start_time_seconds", "gauge",
                                          "When the counters started: the "
                                          "start of nginx, or a change of "
                                          "mpns_status_zone")
           != NGX_OK
        || ngx_http_mpns_status_print(o, 64,
                                      "nginx_mpns_start_time_seconds %T\n",
                                      snap->sh.started)
           != NGX_OK
        || ngx_http_mpns_status_prom_head(o, "reloads_total", "counter",
                                          "Configuration reloads the "
                                          "counters lived through")
           != NGX_OK
        || ngx_http_mpns_status_print(o, 64, "nginx_mpns_reloads_total %uA\n",
                                      snap->sh.reloads)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (snap->sh.last_answer
        && (ngx_http_mpns_status_prom_head(o,
                                           "last_answer_timestamp_seconds",
                                           "gauge",
                                           "When MPNS last answered a send")
               != NGX_OK
            || ngx_http_mpns_status_print(o, 64,
                                          "nginx_mpns_last_answer_timestamp_"
                                          "seconds %uA\n",
                                          snap->sh.last_answer)
               != NGX_OK))
    {
        return NGX_ERROR;
    }

    for (m = ngx_http_mpns_status_zone_metrics; m->name; m++) {
        if (ngx_http_mpns_status_prom_zones(o, snap, m) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_status_prom_head(ngx_http_mpns_status_out_t *o, char *name,
    char *type, char *help)
{
    return ngx_http_mpns_status_print(o, 2 * ngx_strlen(name)
                                         + ngx_strlen(type)
                                         + ngx_strlen(help) + 64,
                                      "# HELP nginx_mpns_%s %s.\n"
                                      "# TYPE nginx_mpns_%s %s\n",
                                      name, help, name, type);
}


/* a sample per location */

static ngx_int_t
ngx_http_mpns_status_prom_locs(ngx_http_mpns_status_out_t *o,
    ngx_http_mpns_status_snap_t *snap, ngx_http_mpns_status_metric_t *m)
{
    ngx_uint_t                   i;
    ngx_atomic_int_t             v;
    ngx_http_mpns_status_loc_t  *loc;

    if (m->help
        && ngx_http_mpns_status_prom_head(o, m->name, m->type, m->help)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < snap->nlocs; i++) {
        loc = &snap->locs[i];

        /* in flight may be read as -1 for a moment: see the hooks */

        v = ((ngx_atomic_int_t *) &loc->counters)[m->what];
        v = ngx_max(v, 0);

        if (ngx_http_mpns_status_print(o, 128, "nginx_mpns_%s{location=\"",
                                       m->name)
               != NGX_OK
            || ngx_http_mpns_status_label(o, &loc->name) != NGX_OK
            || (m->label
                ? ngx_http_mpns_status_print(o, 128, "\",%s} %A\n",
                                             m->label, v)
                : ngx_http_mpns_status_print(o, 64, "\"} %A\n", v))
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a sample per zone that has the figure */

static ngx_int_t
ngx_http_mpns_status_prom_zones(ngx_http_mpns_status_out_t *o,
    ngx_http_mpns_status_snap_t *snap, ngx_http_mpns_status_metric_t *m)
{
    uint64_t                      v;
    ngx_uint_t                    i, ms;
    ngx_http_mpns_status_zone_t  *z;

    if (m->help
        && ngx_http_mpns_status_prom_head(o, m->name, m->type, m->help)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < snap->nzones; i++) {
        z = &snap->zones[i];

        if (ngx_http_mpns_status_zone_value(z, m->what, &v, &ms) != NGX_OK) {
            continue;
        }

        if (ngx_http_mpns_status_print(o, 64, "nginx_mpns_%s{zone=\"",
                                       m->name)
               != NGX_OK
            || ngx_http_mpns_status_label(o, &z->name) != NGX_OK
            || ngx_http_mpns_status_print(o, 1, "\"") != NGX_OK
            || (m->label
                && ngx_http_mpns_status_print(o, 64, ",%s", m->label)
                   != NGX_OK)
            || (m->what <= NGX_HTTP_MPNS_Z_FULL
                && ngx_http_mpns_status_print(o, 64, ",kind=\"%V\"",
                                              &z->kind)
                   != NGX_OK)
            || (ms
                ? ngx_http_mpns_status_print(o, 64, "} %uL.%03uL\n",
                                             v / 1000, v % 1000)
                : ngx_http_mpns_status_print(o, 64, "} %uL\n", v))
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* NGX_DECLINED if the zone has no such figure; "ms": in milliseconds */

static ngx_int_t
ngx_http_mpns_status_zone_value(ngx_http_mpns_status_zone_t *z,
    ngx_uint_t what, uint64_t *v, ngx_uint_t *ms)
{
    ngx_http_mpns_outbox_stat_t  *ob;

    ob = z->outbox;
    *ms = 0;

    switch (what) {

    case NGX_HTTP_MPNS_Z_SIZE:
        *v = z->size;
        return NGX_OK;

    case NGX_HTTP_MPNS_Z_USED:
        *v = z->used;
        return NGX_OK;

    case NGX_HTTP_MPNS_Z_ENTRIES:
        *v = z->entries;
        return NGX_OK;

    case NGX_HTTP_MPNS_Z_FULL:
        *v = z->full ? 1 : 0;
        return NGX_OK;

    case NGX_HTTP_MPNS_Z_HOLDS:
        *v = z->active;
        return z->hold ? NGX_OK : NGX_DECLINED;
    }

    if (what <= NGX_HTTP_MPNS_Z_CB_FAILING) {

        if (ob == NULL) {
            return NGX_DECLINED;
        }

        switch (what) {

        case NGX_HTTP_MPNS_Z_PENDING:
            *v = ob->pending;
            break;

        case NGX_HTTP_MPNS_Z_SENDING:
            *v = ob->sending;
            break;

        case NGX_HTTP_MPNS_Z_DONE:
            *v = ob->done;
            break;

        case NGX_HTTP_MPNS_Z_EXPIRED:
            *v = ob->expired;
            break;

        case NGX_HTTP_MPNS_Z_DUE:
            *v = ob->due;
            break;

        case NGX_HTTP_MPNS_Z_OLDEST:
            *v = ob->oldest_pending;
            *ms = 1;
            break;

        case NGX_HTTP_MPNS_Z_LAG:
            *v = ob->lag;
            *ms = 1;
            break;

        case NGX_HTTP_MPNS_Z_CB_PENDING:
            *v = ob->callbacks_pending;
            break;

        default: /* NGX_HTTP_MPNS_Z_CB_FAILING */
            *v = ob->callbacks_failing;
        }

        return NGX_OK;
    }

    /* the state file */

    if (z->state.len == 0) {
        return NGX_DECLINED;
    }

    switch (what) {

    case NGX_HTTP_MPNS_Z_SAVES:
        *v = z->file.saves;
        break;

    case NGX_HTTP_MPNS_Z_SAVE_FAILURES:
        *v = z->file.failures;
        break;

    case NGX_HTTP_MPNS_Z_SAVE_TIME:
        *v = z->file.last_ok;
        *ms = 1;
        return *v ? NGX_OK : NGX_DECLINED;

    case NGX_HTTP_MPNS_Z_SAVE_DURATION:
        *v = z->file.duration;
        *ms = 1;
        break;

    default: /* NGX_HTTP_MPNS_Z_SAVE_FAILED */
        *v = z->file.failed ? 1 : 0;
    }

    return NGX_OK;
}


/* the number of send results in the histogram */

static ngx_uint_t
ngx_http_mpns_status_count(ngx_http_mpns_status_counters_t *c)
{
    ngx_uint_t  i, n;

    for (n = 0, i = 0; i < NGX_HTTP_MPNS_STATUS_BUCKETS; i++) {
        n += c->time[i];
    }

    return n;
}


/*
 * A percentile of the response times, by linear interpolation in its
 * bucket as Prometheus' histogram_quantile() does; (ngx_msec_t) -1 if
 * there were none.
 */

static ngx_msec_t
ngx_http_mpns_status_percentile(ngx_http_mpns_status_counters_t *c,
    ngx_uint_t permille)
{
    uint64_t    rank, below;
    ngx_msec_t  lo, hi;
    ngx_uint_t  i, n;

    n = ngx_http_mpns_status_count(c);

    if (n == 0) {
        return (ngx_msec_t) -1;
    }

    rank = ((uint64_t) n * permille + 999) / 1000;

    below = 0;
    lo = 0;

    for (i = 0; i < NGX_HTTP_MPNS_STATUS_BUCKETS - 1; i++) {
        hi = ngx_http_mpns_status_bounds[i];

        if (below + c->time[i] >= rank) {
            return lo + (ngx_msec_t) ((hi - lo) * (rank - below)
                                      / c->time[i]);
        }

        below += c->time[i];
        lo = hi;
    }

    /* above the last bound: no better answer than the bound */

    return lo;
}


static ngx_int_t
ngx_http_mpns_status_print(ngx_http_mpns_status_out_t *o, size_t max,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    p = ngx_http_mpns_status_reserve(o, max);
    if (p == NULL) {
        return NGX_ERROR;
    }

    va_start(args, fmt);
    p = ngx_vslprintf(p, p + max, fmt, args);
    va_end(args);

    o->size += p - o->buf->last;
    o->buf->last = p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_status_json_str(ngx_http_mpns_status_out_t *o, ngx_str_t *s)
{
    u_char  *p;
    size_t   len;

    len = ngx_http_mpns_json_str_len(s);

    p = ngx_http_mpns_status_reserve(o, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    p = ngx_http_mpns_json_str(p, s);

    o->size += p - o->buf->last;
    o->buf->last = p;

    return NGX_OK;
}


/* a Prometheus label value: \, " and newline escaped */

static ngx_int_t
ngx_http_mpns_status_label(ngx_http_mpns_status_out_t *o, ngx_str_t *s)
{
    u_char      *p;
    ngx_uint_t   i;

    p = ngx_http_mpns_status_reserve(o, 2 * s->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < s->len; i++) {
        switch (s->data[i]) {

        case '\\':
        case '"':
            *p++ = '\\';
            *p++ = s->data[i];
            break;

        case LF:
            *p++ = '\\';
            *p++ = 'n';
            break;

        default:
            *p++ = s->data[i];
        }
    }

    o->size += p - o->buf->last;
    o->buf->last = p;

    return NGX_OK;
}


/* room for "len" bytes at o->buf->last */

static u_char *
ngx_http_mpns_status_reserve(ngx_http_mpns_status_out_t *o, size_t len)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (o->buf && (size_t) (o->buf->end - o->buf->last) >= len) {
        return o->buf->last;
    }

    b = ngx_create_temp_buf(o->pool,
                            ngx_max(len, NGX_HTTP_MPNS_STATUS_CHUNK));
    if (b == NULL) {
        return NULL;
    }

    cl = ngx_alloc_chain_link(o->pool);
    if (cl == NULL) {
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;

    *o->last = cl;
    o->last = &cl->next;
    o->buf = b;

    return b->last;
}


static ngx_int_t
ngx_http_mpns_status_send(ngx_http_request_t *r, ngx_http_mpns_status_out_t *o,
    ngx_uint_t status, char *type)
{
    ngx_int_t  rc;
    ngx_str_t  cache;

    ngx_str_set(&cache, "no-cache");

    if (ngx_http_mpns_add_header(r, "Cache-Control", &cache) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = o->size;
    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    o->buf->last_buf = (r == r->main) ? 1 : 0;
    o->buf->last_in_chain = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, o->first);
}
