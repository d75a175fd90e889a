
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_http_mpns_state.h"
#include "ngx_http_mpns_status.h"


/*
 * The state file of a zone and its journal.  Every change is a record
 * appended, with the zone locked, to a buffer of the worker that made it;
 * a thread of nginx's pool writes and syncs the buffer to one of the
 * worker's own journal files while the next records gather, to go to
 * another, and the operations that waited for them then complete: many
 * changes per write and per sync, and never a sync on the event loop.
 * Records carry a sequence number from the zone, so that the journals of
 * all workers replay in the order the changes were made.
 *
 * The snapshot (the state file of old, one line per entry) is a
 * compaction: written anew a while after a change, or when the journals
 * have grown, by one worker at a time, a slice per turn of the event
 * loop.  It starts at a known record: the sequence number then, and a new
 * epoch, which every worker's next record sees, so that records after it
 * go to files of the new epoch.  Once the snapshot is renamed into place,
 * a checkpoint file of the new epoch says which record it holds for sure,
 * and the journal files of older epochs are removed.  The master loads
 * the snapshot and replays the records after the checkpoint.
 *
 * A writer of snapshots puts its pid in the zone and renews it after every
 * slice; a writer whose process is gone, or that has not renewed it for
 * NGX_HTTP_MPNS_WRITER_STALE seconds, is taken over.  Journals need no
 * such mark: each worker has its own files.
 */


#define NGX_HTTP_MPNS_SAVE_DELAY        1000
#define NGX_HTTP_MPNS_SAVE_RETRY        5000
#define NGX_HTTP_MPNS_WRITER_STALE      10
#define NGX_HTTP_MPNS_COMMIT_SLOW       5000

/* the journals since a snapshot that call for the next one at once */
#define NGX_HTTP_MPNS_JOURNAL_MAX       (64 * 1024 * 1024)

#define NGX_HTTP_MPNS_JOURNAL_BUFFER    65536
#define NGX_HTTP_MPNS_LANES             4

/* "J<seq:16> <type> <len:8> <crc32:8> ": the crc covers what is before it */
#define NGX_HTTP_MPNS_RECORD_HEADER     38
#define NGX_HTTP_MPNS_RECORD_CRC        28

#define NGX_HTTP_MPNS_RECORD_CHECKPOINT 'c'

/* what a thread does */
#define NGX_HTTP_MPNS_IO_JOURNAL        0
#define NGX_HTTP_MPNS_IO_SLICE          1
#define NGX_HTTP_MPNS_IO_SYNC           2
#define NGX_HTTP_MPNS_IO_COMMIT         3


/* records, and the operations that wait for them to be on disk */
typedef struct {
    u_char                        *start;
    u_char                        *last;
    u_char                        *end;
    ngx_uint_t                     epoch;     /* of the last record */
    ngx_http_mpns_store_op_t      *waiting;
    ngx_http_mpns_store_op_t     **tail;
} ngx_http_mpns_journal_buf_t;


/*
 * A file operation for a thread of the pool: what it needs is copied
 * here, and what it did is read back once it is done.
 */
typedef struct {
    ngx_http_mpns_state_t         *state;
    ngx_uint_t                     what;
    ngx_fd_t                       fd;
    u_char                        *data;
    size_t                         len;
    ngx_uint_t                     rotate;    /* to a new file first */
    u_char                        *name;      /* a file made */
    u_char                        *dir;
    u_char                        *path;
    u_char                        *checkpoint;
    u_char                         record[NGX_HTTP_MPNS_RECORD_HEADER + 1];
    ngx_uint_t                     epoch;
    ngx_uint_t                     swept;

    ngx_err_t                      err;
    const char                    *failed;    /* the call */
    u_char                        *file;      /* on this file */
} ngx_http_mpns_io_t;


/*
 * One of a worker's journal files and the buffer being written to it: a
 * commit starts in a free lane while others sync, which a file system
 * does together.  Each file holds its records in order; a file takes no
 * record of an epoch newer than its own.
 */
typedef struct {
    ngx_http_mpns_state_t         *state;
    ngx_http_mpns_journal_buf_t    out;
    ngx_fd_t                       fd;
    ngx_uint_t                     epoch;
    u_char                        *name;
    ngx_thread_task_t             *task;
} ngx_http_mpns_lane_t;


struct ngx_http_mpns_journal_s {
    ngx_http_mpns_journal_buf_t    fill;      /* records go here */
    ngx_http_mpns_lane_t           lanes[NGX_HTTP_MPNS_LANES];
    u_char                        *record;    /* the one being made */
    ngx_uint_t                     type;
    ngx_event_t                    flush;
    ngx_event_t                    slow;      /* a commit is waited for */
    ngx_msec_t                     started;

    unsigned                       lost:1;    /* a record had no memory */
};


/* a journal file read back: its records in order */
typedef struct {
    ngx_file_t                     file;
    ngx_uint_t                     epoch;
    ngx_uint_t                     n;
    u_char                        *start;
    u_char                        *pos;
    u_char                        *last;
    u_char                        *end;
    off_t                          offset;    /* of "pos" in the file */
    uint64_t                       seq;       /* the record at "pos" */
    ngx_uint_t                     type;
    ngx_str_t                      payload;
    size_t                         size;
    ngx_uint_t                     count;
    unsigned                       eof:1;
    unsigned                       done:1;
} ngx_http_mpns_reader_file_t;


static char *ngx_http_mpns_state_set_sync(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_mpns_journal_conf_t *conf);
static ngx_int_t ngx_http_mpns_state_snapshot(ngx_http_mpns_state_t *st,
    ngx_log_t *log, ngx_uint_t *loaded);
static ngx_int_t ngx_http_mpns_state_line(ngx_http_mpns_state_t *st,
    ngx_pool_t *pool, ngx_str_t *text, ngx_uint_t line, ngx_log_t *log);
static ngx_int_t ngx_http_mpns_state_replay(ngx_http_mpns_state_t *st,
    ngx_pool_t *pool, ngx_log_t *log);
static ngx_int_t ngx_http_mpns_state_next(ngx_http_mpns_state_t *st,
    ngx_http_mpns_reader_file_t *rf, ngx_log_t *log);
static ngx_int_t ngx_http_mpns_state_apply(ngx_http_mpns_state_t *st,
    ngx_pool_t *pool, ngx_http_mpns_reader_file_t *rf, ngx_log_t *log);
static ngx_int_t ngx_http_mpns_state_files(ngx_http_mpns_state_t *st,
    ngx_pool_t *pool, ngx_array_t *files, ngx_log_t *log);
static ngx_int_t ngx_http_mpns_state_read(ngx_http_mpns_state_t *st,
    ngx_http_mpns_reader_file_t *rf, ngx_log_t *log);
static ngx_int_t ngx_http_mpns_state_parse(u_char *p, u_char *last,
    ngx_http_mpns_reader_file_t *rf, size_t max);
static ngx_int_t ngx_http_mpns_state_journal_name(ngx_str_t *path,
    u_char *name, size_t len, ngx_uint_t *epoch, ngx_uint_t *n);
static void ngx_http_mpns_state_header(u_char *p, uint64_t seq,
    ngx_uint_t type, u_char *payload, size_t len);

static void ngx_http_mpns_state_changed(ngx_http_mpns_state_t *st);
static void ngx_http_mpns_journal_flush(ngx_event_t *ev);
static void ngx_http_mpns_journal_start(ngx_http_mpns_state_t *st,
    ngx_http_mpns_lane_t *lane);
static void ngx_http_mpns_journal_written(ngx_event_t *ev);
static void ngx_http_mpns_journal_slow(ngx_event_t *ev);
static void ngx_http_mpns_journal_exit(ngx_http_mpns_state_t *st,
    ngx_log_t *log);

static void ngx_http_mpns_state_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_mpns_state_start(ngx_http_mpns_state_t *st,
    ngx_log_t *log);
static ngx_int_t ngx_http_mpns_state_render(ngx_http_mpns_state_t *st,
    ngx_http_mpns_io_t *io, ngx_log_t *log);
static void ngx_http_mpns_state_done(ngx_event_t *ev);
static ngx_int_t ngx_http_mpns_state_step(ngx_http_mpns_state_t *st,
    ngx_http_mpns_io_t *io, ngx_log_t *log);
static ngx_int_t ngx_http_mpns_state_mark(ngx_http_mpns_state_t *st);
static void ngx_http_mpns_state_end(ngx_http_mpns_state_t *st, ngx_int_t rc,
    ngx_log_t *log);
static void ngx_http_mpns_state_save_now(ngx_http_mpns_state_t *st,
    ngx_log_t *log);

static ngx_int_t ngx_http_mpns_state_post(ngx_thread_task_t *task,
    ngx_http_mpns_state_t *st);
static void ngx_http_mpns_state_thread(void *data, ngx_log_t *log);
static void ngx_http_mpns_state_io(ngx_http_mpns_io_t *io);
static ngx_int_t ngx_http_mpns_state_write(ngx_http_mpns_io_t *io,
    ngx_fd_t fd, u_char *p, size_t len, u_char *file);
static ngx_int_t ngx_http_mpns_state_sync_dir(ngx_http_mpns_io_t *io);
static void ngx_http_mpns_state_sweep(ngx_http_mpns_io_t *io);
static ngx_int_t ngx_http_mpns_state_failed(ngx_http_mpns_io_t *io,
    const char *call, u_char *file);
static void ngx_http_mpns_state_dir(ngx_str_t *path, ngx_str_t *dir);


char *
ngx_http_mpns_state_path(ngx_conf_t *cf, ngx_http_mpns_state_t *st,
    ngx_str_t *path, ngx_http_mpns_journal_conf_t *conf)
{
    u_char           *dir;
    ngx_err_t         err;
    ngx_str_t         name;
    ngx_file_info_t   fi;

    st->path = *path;
    st->cycle = cf->cycle;
    st->conf = conf;

    conf->used = 1;

    if (ngx_conf_full_name(cf->cycle, &st->path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* the workers write next to the file, so its directory must exist */

    ngx_http_mpns_state_dir(&st->path, &name);

    dir = ngx_pnalloc(cf->pool, name.len + 1);
    if (dir == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(dir, name.data, name.len + 1);

    if (ngx_file_info(dir, &fi) == NGX_FILE_ERROR) {
        err = ngx_errno;

        if (err == NGX_ENOENT) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "state directory \"%s\" does not exist", dir);

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, err,
                               ngx_file_info_n " \"%s\" failed", dir);
        }

        return NGX_CONF_ERROR;
    }

    if (!ngx_is_dir(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "state directory \"%s\" is not a directory", dir);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* mpns_journal [sync=commit|time] [snapshot=time] [thread_pool=name] */

char *
ngx_http_mpns_state_journal(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_journal_conf_t *jcf = (void *) ((char *) conf
                                                  + cmd->offset);

    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (jcf->snapshot != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    jcf->snapshot = 60000;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "sync=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            if (ngx_http_mpns_state_set_sync(cf, &s, jcf) != NGX_CONF_OK) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "snapshot=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            jcf->snapshot = ngx_parse_time(&s, 0);

            if (jcf->snapshot == (ngx_msec_t) NGX_ERROR
                || jcf->snapshot == 0)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "thread_pool=", 12) == 0
            && value[i].len > 12)
        {
            jcf->pool_name.data = value[i].data + 12;
            jcf->pool_name.len = value[i].len - 12;

            continue;
        }

        goto invalid;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_mpns_state_set_sync(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_mpns_journal_conf_t *conf)
{
    ngx_msec_t  msec;

    if (value->len == 6 && ngx_strncmp(value->data, "commit", 6) == 0) {
        conf->sync = 0;
        return NGX_CONF_OK;
    }

    msec = ngx_parse_time(value, 0);

    if (msec == (ngx_msec_t) NGX_ERROR || msec == 0) {
        return NGX_CONF_ERROR;
    }

    conf->sync = msec;

    return NGX_CONF_OK;
}


void
ngx_http_mpns_state_create_conf(ngx_http_mpns_journal_conf_t *conf)
{
    /*
     * set by ngx_pcalloc():
     *
     *     conf->sync = 0;
     *     conf->pool_name = { 0, NULL };
     *     conf->thread_pool = NULL;
     *     conf->used = 0;
     */

    conf->snapshot = NGX_CONF_UNSET_MSEC;
}


char *
ngx_http_mpns_state_init_conf(ngx_conf_t *cf,
    ngx_http_mpns_journal_conf_t *conf)
{
    ngx_conf_init_msec_value(conf->snapshot, 60000);

    if (!conf->used) {
        return NGX_CONF_OK;
    }

    /* NULL: the "default" pool; one not declared is refused by nginx */

    conf->thread_pool = ngx_thread_pool_add(cf, conf->pool_name.len
                                                ? &conf->pool_name : NULL);
    if (conf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_mpns_state_load(ngx_http_mpns_state_t *st,
    ngx_http_mpns_state_t *old, ngx_log_t *log)
{
    ngx_int_t    rc;
    ngx_uint_t   loaded;
    ngx_pool_t  *pool;

    if (st->path.len == 0 || ngx_test_config) {
        return NGX_OK;
    }

    if (old && old->sh) {
        /* its workers must not write the files we read from now on */
        ngx_http_mpns_state_migrate(st, old);
    }

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_mpns_state_snapshot(st, log, &loaded);

    if (rc == NGX_OK) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "mpns %V zone \"%V\": loaded %ui entries from \"%s\"",
                      &st->format->name, &st->shm_zone->shm.name, loaded,
                      st->path.data);
    }

    if (rc == NGX_OK || rc == NGX_DONE) {
        rc = ngx_http_mpns_state_replay(st, pool, log);
    }

    ngx_destroy_pool(pool);

    if (rc != NGX_OK) {
        return rc;
    }

    if (st->format->loaded) {
        st->format->loaded(st, log);
    }

    st->sh->saved = st->sh->version;

    if (st->outdated) {
        /* the first worker writes it in today's format */
        st->sh->version++;

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "mpns %V zone \"%V\": \"%s\" is in an older format "
                      "and will be written anew", &st->format->name,
                      &st->shm_zone->shm.name, st->path.data);
    }

    return NGX_OK;
}


void
ngx_http_mpns_state_migrate(ngx_http_mpns_state_t *st,
    ngx_http_mpns_state_t *old)
{
    ngx_http_mpns_state_sh_t  *sh;

    sh = st->sh;

    /*
     * the new zone owns the files now: the old workers must not write
     * them, and the records of the new one come after theirs
     */

    ngx_shmtx_lock(&old->shpool->mutex);

    old->sh->retired = 1;

    sh->seq = ngx_max(sh->seq, old->sh->seq);
    sh->epoch = ngx_max(sh->epoch, old->sh->epoch);
    sh->files = ngx_max(sh->files, old->sh->files);

    ngx_shmtx_unlock(&old->shpool->mutex);

    sh->saved = 0;
    sh->version = 1;
}


/*
 * The data of this zone in the cycle still running, when a reload makes
 * it anew (its size changed): ngx_cycle is the old cycle then
 */

void *
ngx_http_mpns_state_previous(ngx_shm_zone_t *shm_zone)
{
    ngx_uint_t        i;
    ngx_cycle_t      *cycle;
    ngx_shm_zone_t   *zone;
    ngx_list_part_t  *part;

    cycle = (ngx_cycle_t *) ngx_cycle;
    part = &cycle->shared_memory.part;
    zone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            zone = part->elts;
            i = 0;
        }

        if (zone[i].tag == shm_zone->tag
            && zone[i].shm.name.len == shm_zone->shm.name.len
            && ngx_strncmp(zone[i].shm.name.data, shm_zone->shm.name.data,
                           shm_zone->shm.name.len)
               == 0)
        {
            return zone[i].data;
        }
    }
}


/* NGX_OK: loaded, NGX_DONE: no file, or NGX_ERROR */

static ngx_int_t
ngx_http_mpns_state_snapshot(ngx_http_mpns_state_t *st, ngx_log_t *log,
    ngx_uint_t *loaded)
{
    u_char      *buf, *pos, *last, *end, *lf;
    ssize_t      n;
    ngx_fd_t     fd;
    ngx_err_t    err;
    ngx_int_t    rc;
    ngx_str_t    text;
    ngx_uint_t   line, eof, skip;
    ngx_file_t   file;
    ngx_pool_t  *pool;

    *loaded = 0;

    fd = ngx_open_file(st->path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;

        if (err == NGX_ENOENT) {
            return NGX_DONE;
        }

        /* starting empty would overwrite the file with nothing */

        ngx_log_error(NGX_LOG_EMERG, log, err,
                      ngx_open_file_n " \"%s\" failed", st->path.data);
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));

    file.fd = fd;
    file.name = st->path;
    file.log = log;

    rc = NGX_ERROR;
    buf = NULL;

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, log);
    if (pool == NULL) {
        goto done;
    }

    buf = ngx_alloc(st->format->buffer_size, log);
    if (buf == NULL) {
        goto done;
    }

    end = buf + st->format->buffer_size;
    pos = buf;
    last = buf;
    line = 0;
    eof = 0;
    skip = 0;

    for ( ;; ) {

        lf = ngx_strlchr(pos, last, LF);

        if (lf == NULL) {

            if (eof) {
                if (pos < last && !skip) {
                    text.data = pos;
                    text.len = last - pos;

                    rc = ngx_http_mpns_state_line(st, pool, &text, ++line,
                                                  log);
                    if (rc == NGX_ERROR) {
                        goto done;
                    }

                    if (rc == NGX_OK) {
                        (*loaded)++;
                    }
                }

                break;
            }

            if (pos == buf && last == end) {
                if (!skip) {
                    ngx_log_error(NGX_LOG_WARN, log, 0,
                                  "mpns %V zone \"%V\": line %ui of \"%s\" "
                                  "is too long, skipped",
                                  &st->format->name, &st->shm_zone->shm.name,
                                  line + 1, st->path.data);
                    skip = 1;
                }

                last = buf;
            }

            last = ngx_movemem(buf, pos, last - pos);
            pos = buf;

            n = ngx_read_file(&file, last, end - last, file.offset);

            if (n == NGX_ERROR) {
                goto done;
            }

            if (n == 0) {
                eof = 1;
            }

            last += n;
            continue;
        }

        text.data = pos;
        text.len = lf - pos;
        pos = lf + 1;
        line++;

        if (skip) {
            skip = 0;
            continue;
        }

        if (text.len && text.data[text.len - 1] == CR) {
            text.len--;
        }

        if (text.len == 0) {
            continue;
        }

        rc = ngx_http_mpns_state_line(st, pool, &text, line, log);

        if (rc == NGX_OK) {
            (*loaded)++;

        } else if (rc == NGX_BUSY) {
            break;

        } else if (rc == NGX_ERROR) {
            goto done;
        }

        ngx_reset_pool(pool);
    }

    st->sh->size = file.offset;

    rc = NGX_OK;

done:

    if (buf) {
        ngx_free(buf);
    }

    if (pool) {
        ngx_destroy_pool(pool);
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                      ngx_close_file_n " \"%s\" failed", st->path.data);
    }

    return rc;
}


/* NGX_OK: loaded, NGX_DECLINED: skipped, NGX_BUSY: the zone is full */

static ngx_int_t
ngx_http_mpns_state_line(ngx_http_mpns_state_t *st, ngx_pool_t *pool,
    ngx_str_t *text, ngx_uint_t line, ngx_log_t *log)
{
    ngx_int_t              rc;
    ngx_http_mpns_error_t  err;

    ngx_memzero(&err, sizeof(ngx_http_mpns_error_t));

    rc = st->format->load(st, pool, text, &err);

    if (rc == NGX_DECLINED) {
        if (err.field.len) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "mpns %V zone \"%V\": line %ui of \"%s\" "
                          "skipped: %s, field \"%V\"", &st->format->name,
                          &st->shm_zone->shm.name, line, st->path.data,
                          err.text, &err.field);

        } else {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "mpns %V zone \"%V\": line %ui of \"%s\" "
                          "skipped: %s", &st->format->name,
                          &st->shm_zone->shm.name, line, st->path.data,
                          err.text ? err.text : "invalid line");
        }

    } else if (rc == NGX_BUSY) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "mpns %V zone \"%V\": \"%s\" is loaded up to "
                      "line %ui only", &st->format->name,
                      &st->shm_zone->shm.name, st->path.data, line - 1);
    }

    return rc;
}


/*
 * The journal files after the snapshot, merged by sequence number: the
 * newest valid checkpoint tells the epoch and the last record the
 * snapshot holds for sure; files of older epochs are in it and removed.
 */

static ngx_int_t
ngx_http_mpns_state_replay(ngx_http_mpns_state_t *st, ngx_pool_t *pool,
    ngx_log_t *log)
{
    size_t                        size;
    uint64_t                      from;
    ngx_int_t                     rc;
    ngx_uint_t                    i, epoch, records, nfiles, full;
    ngx_pool_t                   *temp;
    ngx_array_t                   files;
    ngx_http_mpns_state_sh_t     *sh;
    ngx_http_mpns_reader_file_t  *rf, *next;

    if (ngx_array_init(&files, pool, 4, sizeof(ngx_http_mpns_reader_file_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* for one record at a time */

    temp = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, log);
    if (temp == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_mpns_state_files(st, pool, &files, log);

    sh = st->sh;
    rf = files.elts;
    from = 0;
    epoch = 0;

    if (rc != NGX_OK) {
        goto done;
    }

    /* the newest checkpoint that reads well */

    for (i = 0; i < files.nelts; i++) {
        if (rf[i].n != 0 || rf[i].epoch < epoch) {
            continue;
        }

        rc = ngx_http_mpns_state_read(st, &rf[i], log);

        if (rc == NGX_ERROR) {
            goto done;
        }

        if (rc == NGX_OK && rf[i].type == NGX_HTTP_MPNS_RECORD_CHECKPOINT) {
            epoch = rf[i].epoch;
            from = rf[i].seq;
        }
    }

    sh->seq = ngx_max(sh->seq, from);
    sh->epoch = ngx_max(sh->epoch, epoch);
    size = st->format->buffer_size + NGX_HTTP_MPNS_RECORD_HEADER + 1;
    nfiles = 0;

    for (i = 0; i < files.nelts; i++) {
        sh->files = ngx_max(sh->files, rf[i].n);
        rf[i].done = 1;

        if (rf[i].epoch < epoch) {
            /* in the snapshot */

            if (ngx_delete_file(rf[i].file.name.data) == NGX_FILE_ERROR) {
                ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                              ngx_delete_file_n " \"%s\" failed",
                              rf[i].file.name.data);
            }

            continue;
        }

        sh->epoch = ngx_max(sh->epoch, rf[i].epoch);

        if (rf[i].n == 0) {
            continue;
        }

        rf[i].start = ngx_palloc(pool, size);
        if (rf[i].start == NULL) {
            rc = NGX_ERROR;
            goto done;
        }

        rf[i].pos = rf[i].start;
        rf[i].last = rf[i].start;
        rf[i].end = rf[i].start + size;
        rf[i].done = 0;

        rc = ngx_http_mpns_state_next(st, &rf[i], log);

        if (rc == NGX_ERROR) {
            goto done;
        }

        nfiles++;
    }

    records = 0;
    full = 0;
    st->replaying = 1;

    for ( ;; ) {

        next = NULL;

        for (i = 0; i < files.nelts; i++) {
            if (!rf[i].done && (next == NULL || rf[i].seq < next->seq)) {
                next = &rf[i];
            }
        }

        if (next == NULL) {
            break;
        }

        /* all are read, applied or not, for the numbers to go on from */

        sh->seq = ngx_max(sh->seq, next->seq);

        if (next->seq > from && !full) {
            rc = ngx_http_mpns_state_apply(st, temp, next, log);

            if (rc == NGX_ERROR) {
                break;
            }

            if (rc == NGX_BUSY) {
                full = 1;

            } else {
                records++;
            }
        }

        ngx_reset_pool(temp);

        rc = ngx_http_mpns_state_next(st, next, log);

        if (rc == NGX_ERROR) {
            break;
        }
    }

    st->replaying = 0;

    if (rc == NGX_ERROR) {
        goto done;
    }

    if (nfiles) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "mpns %V zone \"%V\": replayed %ui records of %ui "
                      "journal files", &st->format->name,
                      &st->shm_zone->shm.name, records, nfiles);
    }

    if (records) {
        /* a snapshot soon: the next start reads less */
        sh->version++;
    }

    rc = NGX_OK;

done:

    ngx_destroy_pool(temp);

    for (i = 0; i < files.nelts; i++) {
        if (rf[i].file.fd != NGX_INVALID_FILE
            && ngx_close_file(rf[i].file.fd) == NGX_FILE_ERROR)
        {
            ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                          ngx_close_file_n " \"%s\" failed",
                          rf[i].file.name.data);
        }
    }

    return rc;
}


/*
 * The next record of a journal file, in order: NGX_OK, or rf->done at
 * its end or at a record torn or out of order, which ends what is read
 * of the file; NGX_ERROR
 */

static ngx_int_t
ngx_http_mpns_state_next(ngx_http_mpns_state_t *st,
    ngx_http_mpns_reader_file_t *rf, ngx_log_t *log)
{
    uint64_t   prev;
    ngx_int_t  rc;

    prev = rf->count ? rf->seq : 0;

    rc = ngx_http_mpns_state_read(st, rf, log);

    if (rc == NGX_OK && rf->seq <= prev) {
        rf->done = 1;
        rc = NGX_DECLINED;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "mpns %V zone \"%V\": torn record at byte %O of "
                      "\"%s\", %O bytes dropped", &st->format->name,
                      &st->shm_zone->shm.name, rf->offset,
                      rf->file.name.data, rf->size - rf->offset);
    }

    return (rc == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


/* a record into the zone: NGX_OK, NGX_BUSY (the zone is full), NGX_ERROR */

static ngx_int_t
ngx_http_mpns_state_apply(ngx_http_mpns_state_t *st, ngx_pool_t *pool,
    ngx_http_mpns_reader_file_t *rf, ngx_log_t *log)
{
    ngx_int_t              rc;
    ngx_http_mpns_error_t  err;

    if (rf->type == NGX_HTTP_MPNS_RECORD_REMOVE) {
        return st->format->remove(st, &rf->payload);
    }

    if (rf->type != NGX_HTTP_MPNS_RECORD_SET) {
        return NGX_OK;
    }

    ngx_memzero(&err, sizeof(ngx_http_mpns_error_t));

    rc = st->format->load(st, pool, &rf->payload, &err);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "mpns %V zone \"%V\": record %ui of \"%s\" "
                      "skipped: %s%s%V%s", &st->format->name,
                      &st->shm_zone->shm.name, rf->count,
                      rf->file.name.data,
                      err.text ? err.text : "invalid line",
                      err.field.len ? ", field \"" : "", &err.field,
                      err.field.len ? "\"" : "");
        return NGX_OK;
    }

    if (rc == NGX_BUSY) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "mpns %V zone \"%V\": the journal is replayed up to "
                      "record %ui of \"%s\" only", &st->format->name,
                      &st->shm_zone->shm.name, rf->count,
                      rf->file.name.data);
    }

    return rc;
}


/* the journal files of the state file: "<path>-journal.<epoch>.<n>" */

static ngx_int_t
ngx_http_mpns_state_files(ngx_http_mpns_state_t *st, ngx_pool_t *pool,
    ngx_array_t *files, ngx_log_t *log)
{
    u_char                       *p, *base;
    size_t                        len;
    ngx_err_t                     err;
    ngx_dir_t                     dir;
    ngx_str_t                     path;
    ngx_uint_t                    epoch, n;
    ngx_file_info_t               fi;
    ngx_http_mpns_reader_file_t  *rf;

    ngx_http_mpns_state_dir(&st->path, &path);

    p = ngx_pnalloc(pool, path.len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(p, path.data, path.len + 1);
    path.data = p;

    /* the files are named as the state file is, in its directory */

    base = st->path.data + st->path.len;

    while (base[-1] != '/') {
        base--;
    }

    if (ngx_open_dir(&path, &dir) == NGX_ERROR) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      ngx_open_dir_n " \"%V\" failed", &path);
        return NGX_ERROR;
    }

    for ( ;; ) {
        ngx_set_errno(0);

        if (ngx_read_dir(&dir) == NGX_ERROR) {
            err = ngx_errno;

            if (err != NGX_ENOMOREFILES) {
                ngx_log_error(NGX_LOG_EMERG, log, err,
                              ngx_read_dir_n " \"%V\" failed", &path);
                goto failed;
            }

            break;
        }

        len = ngx_de_namelen(&dir);

        if (ngx_http_mpns_state_journal_name(&st->path, ngx_de_name(&dir),
                                             len, &epoch, &n)
            != NGX_OK)
        {
            continue;
        }

        rf = ngx_array_push(files);
        if (rf == NULL) {
            goto failed;
        }

        ngx_memzero(rf, sizeof(ngx_http_mpns_reader_file_t));

        rf->epoch = epoch;
        rf->n = n;
        rf->file.log = log;
        rf->file.fd = NGX_INVALID_FILE;

        rf->file.name.len = (base - st->path.data) + len;
        rf->file.name.data = ngx_pnalloc(pool, rf->file.name.len + 1);
        if (rf->file.name.data == NULL) {
            goto failed;
        }

        p = ngx_cpymem(rf->file.name.data, st->path.data,
                       base - st->path.data);
        p = ngx_cpymem(p, ngx_de_name(&dir), len);
        *p = '\0';

        rf->file.fd = ngx_open_file(rf->file.name.data, NGX_FILE_RDONLY,
                                    NGX_FILE_OPEN, 0);

        if (rf->file.fd == NGX_INVALID_FILE) {
            ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                          ngx_open_file_n " \"%s\" failed",
                          rf->file.name.data);
            goto failed;
        }

        if (ngx_fd_info(rf->file.fd, &fi) == NGX_FILE_ERROR) {
            ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                          ngx_fd_info_n " \"%s\" failed",
                          rf->file.name.data);
            goto failed;
        }

        if (!ngx_is_file(&fi)) {
            (void) ngx_close_file(rf->file.fd);
            files->nelts--;
            continue;
        }

        rf->size = ngx_file_size(&fi);

        if (rf->n == 0) {
            /* a checkpoint: one record */

            rf->start = ngx_palloc(pool, NGX_HTTP_MPNS_RECORD_HEADER + 1);
            if (rf->start == NULL) {
                goto failed;
            }

            rf->pos = rf->start;
            rf->last = rf->start;
            rf->end = rf->start + NGX_HTTP_MPNS_RECORD_HEADER + 1;
        }
    }

    (void) ngx_close_dir(&dir);

    return NGX_OK;

failed:

    (void) ngx_close_dir(&dir);

    return NGX_ERROR;
}


/*
 * The next record of a file at rf->pos: NGX_OK, NGX_DONE at its end (then
 * rf->done), NGX_DECLINED if what follows is not a whole record, or
 * NGX_ERROR.
 */

static ngx_int_t
ngx_http_mpns_state_read(ngx_http_mpns_state_t *st,
    ngx_http_mpns_reader_file_t *rf, ngx_log_t *log)
{
    ssize_t    n;
    ngx_int_t  rc;

    if (rf->count) {
        /* past the record read last time */
        rf->offset += NGX_HTTP_MPNS_RECORD_HEADER + rf->payload.len + 1;
        rf->pos += NGX_HTTP_MPNS_RECORD_HEADER + rf->payload.len + 1;
    }

    for ( ;; ) {
        rc = ngx_http_mpns_state_parse(rf->pos, rf->last, rf,
                                       rf->end - rf->start
                                       - NGX_HTTP_MPNS_RECORD_HEADER - 1);

        if (rc == NGX_OK) {
            rf->count++;
            return NGX_OK;
        }

        if (rc == NGX_DECLINED) {
            rf->done = 1;
            return NGX_DECLINED;
        }

        /* NGX_AGAIN: more bytes are needed */

        if (rf->eof) {
            rf->done = 1;

            if (rf->pos == rf->last) {
                return NGX_DONE;
            }

            return NGX_DECLINED;
        }

        rf->last = ngx_movemem(rf->start, rf->pos, rf->last - rf->pos);
        rf->pos = rf->start;

        n = ngx_read_file(&rf->file, rf->last, rf->end - rf->last,
                          rf->file.offset);

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (n == 0) {
            rf->eof = 1;
        }

        rf->last += n;
    }
}


/* a record at "p": NGX_OK, NGX_AGAIN (not all there yet), NGX_DECLINED */

static ngx_int_t
ngx_http_mpns_state_parse(u_char *p, u_char *last,
    ngx_http_mpns_reader_file_t *rf, size_t max)
{
    u_char     *h;
    size_t      len;
    uint32_t    crc, sum;
    uint64_t    seq;
    ngx_int_t   v;

    if (last - p < NGX_HTTP_MPNS_RECORD_HEADER) {
        /* a header begun wrong is never completed */
        return (last > p && *p != 'J') ? NGX_DECLINED : NGX_AGAIN;
    }

    h = p;

    if (h[0] != 'J' || h[17] != ' ' || h[19] != ' ' || h[28] != ' '
        || h[37] != ' ')
    {
        return NGX_DECLINED;
    }

    v = ngx_hextoi(&h[1], 16);

    if (v == NGX_ERROR) {
        return NGX_DECLINED;
    }

    seq = (uint64_t) v;

    v = ngx_hextoi(&h[20], 8);
    len = (size_t) v;

    if (v == NGX_ERROR || len > max) {
        return NGX_DECLINED;
    }

    v = ngx_hextoi(&h[29], 8);

    if (v == NGX_ERROR) {
        return NGX_DECLINED;
    }

    sum = (uint32_t) v;

    if ((size_t) (last - p) < NGX_HTTP_MPNS_RECORD_HEADER + len + 1) {
        return NGX_AGAIN;
    }

    p += NGX_HTTP_MPNS_RECORD_HEADER;

    if (p[len] != LF) {
        return NGX_DECLINED;
    }

    ngx_crc32_init(crc);
    ngx_crc32_update(&crc, h, NGX_HTTP_MPNS_RECORD_CRC);
    ngx_crc32_update(&crc, p, len);
    ngx_crc32_final(crc);

    if (crc != sum || seq == 0) {
        return NGX_DECLINED;
    }

    rf->seq = seq;
    rf->type = h[18];
    rf->payload.data = p;
    rf->payload.len = len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_state_journal_name(ngx_str_t *path, u_char *name, size_t len,
    ngx_uint_t *epoch, ngx_uint_t *n)
{
    u_char  *base, *p, *last, *dot;

    base = path->data + path->len;

    while (base > path->data && base[-1] != '/') {
        base--;
    }

    p = name;
    last = name + len;

    if ((size_t) (path->data + path->len - base) + sizeof("-journal.") - 1
        > len
        || ngx_strncmp(p, base, path->data + path->len - base) != 0)
    {
        return NGX_DECLINED;
    }

    p += path->data + path->len - base;

    if (ngx_strncmp(p, "-journal.", sizeof("-journal.") - 1) != 0) {
        return NGX_DECLINED;
    }

    p += sizeof("-journal.") - 1;

    dot = ngx_strlchr(p, last, '.');

    if (dot == NULL || dot == p || dot + 1 == last) {
        return NGX_DECLINED;
    }

    *epoch = ngx_atoi(p, dot - p);
    *n = ngx_atoi(dot + 1, last - dot - 1);

    if (*epoch == (ngx_uint_t) NGX_ERROR || *n == (ngx_uint_t) NGX_ERROR) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* the header of a record before its payload of "len" bytes */

static void
ngx_http_mpns_state_header(u_char *p, uint64_t seq, ngx_uint_t type,
    u_char *payload, size_t len)
{
    uint32_t  crc;

    (void) ngx_sprintf(p, "J%016xL %c %08xz", seq, (int) type, len);

    ngx_crc32_init(crc);
    ngx_crc32_update(&crc, p, NGX_HTTP_MPNS_RECORD_CRC);
    ngx_crc32_update(&crc, payload, len);
    ngx_crc32_final(crc);

    (void) ngx_sprintf(p + NGX_HTTP_MPNS_RECORD_CRC, " %08xD ", crc);
}


ngx_int_t
ngx_http_mpns_state_init_process(ngx_http_mpns_state_t *st,
    ngx_cycle_t *cycle)
{
    u_char                       *dirname;
    size_t                        len;
    ngx_fd_t                      fd;
    ngx_str_t                     dir;
    ngx_uint_t                    i;
    ngx_http_mpns_io_t           *io;
    ngx_thread_task_t            *task;
    ngx_http_mpns_lane_t         *lane;
    ngx_http_mpns_journal_t      *jn;
    ngx_http_mpns_journal_buf_t  *b;

    if (st->path.len == 0) {
        return NGX_OK;
    }

    ngx_http_mpns_state_dir(&st->path, &dir);

    dirname = ngx_pnalloc(cycle->pool, dir.len + 1);
    if (dirname == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(dirname, dir.data, dir.len + 1);

    /* the journal */

    jn = ngx_pcalloc(cycle->pool, sizeof(ngx_http_mpns_journal_t));
    if (jn == NULL) {
        return NGX_ERROR;
    }

    len = st->path.len + sizeof("-journal..") + 2 * NGX_INT_T_LEN;

    for (i = 0; i <= NGX_HTTP_MPNS_LANES; i++) {
        b = (i == NGX_HTTP_MPNS_LANES) ? &jn->fill : &jn->lanes[i].out;

        b->start = ngx_alloc(NGX_HTTP_MPNS_JOURNAL_BUFFER, cycle->log);
        if (b->start == NULL) {
            return NGX_ERROR;
        }

        b->last = b->start;
        b->end = b->start + NGX_HTTP_MPNS_JOURNAL_BUFFER;
        b->tail = &b->waiting;

        if (i == NGX_HTTP_MPNS_LANES) {
            break;
        }

        lane = &jn->lanes[i];
        lane->state = st;
        lane->fd = NGX_INVALID_FILE;

        lane->name = ngx_pnalloc(cycle->pool, len);
        if (lane->name == NULL) {
            return NGX_ERROR;
        }

        task = ngx_thread_task_alloc(cycle->pool, sizeof(ngx_http_mpns_io_t));
        if (task == NULL) {
            return NGX_ERROR;
        }

        io = task->ctx;
        io->state = st;
        io->dir = dirname;

        task->handler = ngx_http_mpns_state_thread;
        task->event.handler = ngx_http_mpns_journal_written;
        task->event.data = lane;
        task->event.log = cycle->log;

        lane->task = task;
    }

    jn->flush.handler = ngx_http_mpns_journal_flush;
    jn->flush.data = st;
    jn->flush.log = cycle->log;
    jn->flush.cancelable = 1;

    /* not cancelable: a graceful stop answers what waits for a commit */

    jn->slow.handler = ngx_http_mpns_journal_slow;
    jn->slow.data = st;
    jn->slow.log = cycle->log;

    st->journal = jn;

    /* the snapshots */

    st->temp = ngx_pnalloc(cycle->pool, st->path.len + sizeof(".") - 1
                                        + NGX_INT64_LEN + sizeof(".tmp"));
    if (st->temp == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(st->temp, "%V.%P.tmp%Z", &st->path, ngx_pid);

    st->buf = ngx_create_temp_buf(cycle->pool, st->format->buffer_size);
    st->cursor = ngx_pcalloc(cycle->pool, st->format->cursor_size);

    if (st->buf == NULL || st->cursor == NULL) {
        return NGX_ERROR;
    }

    task = ngx_thread_task_alloc(cycle->pool, sizeof(ngx_http_mpns_io_t));
    if (task == NULL) {
        return NGX_ERROR;
    }

    io = task->ctx;
    io->state = st;
    io->fd = NGX_INVALID_FILE;
    io->dir = dirname;
    io->path = st->path.data;
    io->name = st->temp;

    io->checkpoint = ngx_pnalloc(cycle->pool, len);
    if (io->checkpoint == NULL) {
        return NGX_ERROR;
    }

    task->handler = ngx_http_mpns_state_thread;
    task->event.handler = ngx_http_mpns_state_done;
    task->event.data = st;
    task->event.log = cycle->log;

    st->task = task;

    /* the journal makes changes safe: a stop need not wait for a save */

    st->event.handler = ngx_http_mpns_state_handler;
    st->event.data = st;
    st->event.log = cycle->log;
    st->event.cancelable = 1;

    if (ngx_worker != 0) {
        goto done;
    }

    /*
     * the master (often root) reads the files, the workers write them:
     * tell now, not at the first change, when they cannot
     */

    fd = ngx_open_file(st->temp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "mpns %V zone \"%V\": state directory \"%V\" "
                      "is not writable by worker processes: "
                      ngx_open_file_n " \"%s\" failed", &st->format->name,
                      &st->shm_zone->shm.name, &dir, st->temp);

    } else {
        if (ngx_close_file(fd) == NGX_FILE_ERROR) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                          ngx_close_file_n " \"%s\" failed", st->temp);
        }

        if (ngx_delete_file(st->temp) == NGX_FILE_ERROR) {
            ngx_log_error(NGX_LOG_CRIT, cycle->log, ngx_errno,
                          ngx_delete_file_n " \"%s\" failed", st->temp);
        }
    }

done:

    /* what was migrated on reload, replayed, or loaded from an old format */

    if (st->sh->version != st->sh->saved) {
        ngx_add_timer(&st->event, NGX_HTTP_MPNS_SAVE_DELAY);
    }

    return NGX_OK;
}


void
ngx_http_mpns_state_exit_process(ngx_http_mpns_state_t *st,
    ngx_cycle_t *cycle)
{
    ngx_uint_t                i;
    ngx_http_mpns_journal_t  *jn;

    jn = st->journal;

    if (jn == NULL) {
        return;
    }

    /*
     * nginx stopped the thread pools first: every task posted is done,
     * but its completion is not seen; what is left is written here
     */

    ngx_http_mpns_journal_exit(st, cycle->log);

    ngx_http_mpns_state_save_now(st, cycle->log);

    ngx_free(jn->fill.start);

    for (i = 0; i < NGX_HTTP_MPNS_LANES; i++) {
        ngx_free(jn->lanes[i].out.start);
    }

    st->journal = NULL;
}


u_char *
ngx_http_mpns_state_record(ngx_http_mpns_state_t *st, ngx_uint_t type,
    size_t len)
{
    u_char                       *p;
    size_t                        size, need;
    ngx_http_mpns_journal_t      *jn;
    ngx_http_mpns_journal_buf_t  *b;

    st->sh->version++;

    jn = st->journal;

    if (jn == NULL || st->sh->retired) {
        return NULL;
    }

    b = &jn->fill;
    need = NGX_HTTP_MPNS_RECORD_HEADER + len + 1;

    if ((size_t) (b->end - b->last) < need) {
        size = b->end - b->start;

        while (size - (b->last - b->start) < need) {
            size *= 2;
        }

        p = ngx_alloc(size, ngx_cycle->log);

        if (p == NULL) {
            jn->lost = 1;
            return NULL;
        }

        b->last = ngx_cpymem(p, b->start, b->last - b->start);
        ngx_free(b->start);
        b->start = p;
        b->end = p + size;
    }

    jn->record = b->last;
    jn->type = type;

    return b->last + NGX_HTTP_MPNS_RECORD_HEADER;
}


void
ngx_http_mpns_state_recorded(ngx_http_mpns_state_t *st, u_char *last)
{
    u_char                       *p;
    size_t                        len;
    ngx_http_mpns_journal_t      *jn;
    ngx_http_mpns_state_sh_t     *sh;
    ngx_http_mpns_journal_buf_t  *b;

    jn = st->journal;
    sh = st->sh;
    b = &jn->fill;
    p = jn->record;

    len = last - p - NGX_HTTP_MPNS_RECORD_HEADER;

    ngx_http_mpns_state_header(p, ++sh->seq, jn->type,
                               p + NGX_HTTP_MPNS_RECORD_HEADER, len);

    *last++ = LF;

    /* a snapshot that began before this record does not hold it */
    b->epoch = sh->epoch;

    sh->journaled += last - p;
    b->last = last;
}


ngx_int_t
ngx_http_mpns_state_commit(ngx_http_mpns_state_t *st,
    ngx_http_mpns_store_op_t *op, ngx_int_t rc)
{
    ngx_http_mpns_journal_t      *jn;
    ngx_http_mpns_journal_buf_t  *b;

    jn = st->journal;

    if (jn == NULL) {
        return rc;
    }

    ngx_http_mpns_state_changed(st);

    if (jn->lost) {
        jn->lost = 0;

        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "mpns %V zone \"%V\": no memory for a journal record",
                      &st->format->name, &st->shm_zone->shm.name);

        /* it is not in the journal, but in the zone: the snapshot has it */

        if (st->event.timer_set) {
            ngx_del_timer(&st->event);
        }

        if (!st->event.posted) {
            ngx_post_event(&st->event, &ngx_posted_events);
        }

        return NGX_ERROR;
    }

    b = &jn->fill;

    if (b->last == b->start) {
        /* nothing recorded */
        return rc;
    }

    if (st->conf->sync) {
        /* on a timer: nothing waits */

        if (!jn->flush.timer_set) {
            ngx_add_timer(&jn->flush, st->conf->sync);
        }

        return rc;
    }

    if (!jn->flush.posted) {
        /* the records of this turn of the event loop together */
        ngx_post_event(&jn->flush, &ngx_posted_events);
    }

    if (op == NULL || op->handler == NULL) {
        return rc;
    }

    op->result = rc;
    op->next = NULL;

    *b->tail = op;
    b->tail = &op->next;

    return NGX_AGAIN;
}


ngx_uint_t
ngx_http_mpns_state_retired(ngx_http_mpns_state_t *st)
{
    return st->sh && st->sh->retired;
}


/* arms the next snapshot; sooner when the journals have grown */

static void
ngx_http_mpns_state_changed(ngx_http_mpns_state_t *st)
{
    uint64_t  max;

    if (st->saving || st->event.posted) {
        return;
    }

    max = ngx_max(st->sh->size, NGX_HTTP_MPNS_JOURNAL_MAX);

    if (st->sh->journaled >= max) {
        if (st->event.timer_set) {
            ngx_del_timer(&st->event);
        }

        ngx_post_event(&st->event, &ngx_posted_events);
        return;
    }

    if (!st->event.timer_set) {
        ngx_add_timer(&st->event, st->conf->snapshot);
    }
}


/* what was recorded since the last write, to a free lane */

static void
ngx_http_mpns_journal_flush(ngx_event_t *ev)
{
    ngx_http_mpns_state_t *st = ev->data;

    ngx_uint_t                i;
    ngx_http_mpns_lane_t     *lane;
    ngx_http_mpns_journal_t  *jn;

    jn = st->journal;

    if (jn->fill.last == jn->fill.start) {
        return;
    }

    /* idle lanes let go of files a snapshot removed */

    for (i = 0; i < NGX_HTTP_MPNS_LANES; i++) {
        lane = &jn->lanes[i];

        if (!lane->task->event.active && lane->fd != NGX_INVALID_FILE
            && lane->epoch < jn->fill.epoch)
        {
            (void) ngx_close_file(lane->fd);
            lane->fd = NGX_INVALID_FILE;
        }
    }

    for (i = 0; i < NGX_HTTP_MPNS_LANES; i++) {
        lane = &jn->lanes[i];

        if (lane->task->event.active) {
            continue;
        }

        ngx_http_mpns_journal_start(st, lane);

        if (ngx_http_mpns_state_post(lane->task, st) != NGX_OK) {
            /* done here, as a thread would */
            ngx_http_mpns_state_io(lane->task->ctx);
            ngx_http_mpns_journal_written(&lane->task->event);
            return;
        }

        if (lane->out.waiting && !jn->slow.timer_set) {
            jn->started = ngx_current_msec;
            ngx_add_timer(&jn->slow, NGX_HTTP_MPNS_COMMIT_SLOW);
        }

        return;
    }

    /* every lane writes: the first one done takes what is here */
}


/* the buffer filled goes to "lane", to a new file when it has to */

static void
ngx_http_mpns_journal_start(ngx_http_mpns_state_t *st,
    ngx_http_mpns_lane_t *lane)
{
    ngx_uint_t                    n;
    ngx_http_mpns_io_t           *io;
    ngx_http_mpns_journal_t      *jn;
    ngx_http_mpns_journal_buf_t   b;

    jn = st->journal;
    io = lane->task->ctx;

    b = lane->out;
    lane->out = jn->fill;
    jn->fill = b;

    /* the lists moved with the structures */

    jn->fill.tail = &jn->fill.waiting;

    if (lane->out.waiting == NULL) {
        lane->out.tail = &lane->out.waiting;
    }

    io->what = NGX_HTTP_MPNS_IO_JOURNAL;
    io->fd = lane->fd;
    io->data = lane->out.start;
    io->len = lane->out.last - lane->out.start;
    io->err = 0;

    /*
     * the first write, the one after an error, or records of a snapshot
     * that began since the file was made: a new file, named for the
     * epoch of its newest record
     */

    io->rotate = (lane->fd == NGX_INVALID_FILE
                  || lane->epoch < lane->out.epoch);

    if (io->rotate) {
        lane->epoch = lane->out.epoch;

        ngx_shmtx_lock(&st->shpool->mutex);
        n = ++st->sh->files;
        ngx_shmtx_unlock(&st->shpool->mutex);

        (void) ngx_sprintf(lane->name, "%V-journal.%ui.%ui%Z", &st->path,
                           lane->epoch, n);
        io->name = lane->name;
    }
}


static void
ngx_http_mpns_journal_written(ngx_event_t *ev)
{
    ngx_http_mpns_lane_t *lane = ev->data;

    ngx_int_t                     rc;
    ngx_uint_t                    i;
    ngx_http_mpns_io_t           *io;
    ngx_http_mpns_state_t        *st;
    ngx_http_mpns_journal_t      *jn;
    ngx_http_mpns_store_op_t     *op, *next;
    ngx_http_mpns_journal_buf_t  *b;

    st = lane->state;
    jn = st->journal;
    io = lane->task->ctx;
    b = &lane->out;

    lane->fd = io->fd;
    rc = NGX_OK;

    if (io->err) {
        ngx_log_error(NGX_LOG_CRIT, ev->log, io->err,
                      "mpns %V zone \"%V\": %s \"%s\" failed",
                      &st->format->name, &st->shm_zone->shm.name,
                      io->failed, io->file);

        /*
         * what the file holds is not known: the next records go to a new
         * one, and what these were is saved by the next snapshot
         */

        rc = NGX_ERROR;

        if (!st->saving && !st->event.posted) {
            if (st->event.timer_set) {
                ngx_del_timer(&st->event);
            }

            ngx_add_timer(&st->event, NGX_HTTP_MPNS_SAVE_DELAY);
        }
    }

    /* a journal commit is a save of the state, for mpns_status */

    ngx_http_mpns_status_save(&st->shm_zone->shm.name, rc);

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "mpns %V zone \"%V\" journal: %uz bytes to \"%s\"%s",
                   &st->format->name, &st->shm_zone->shm.name, io->len,
                   lane->name, io->rotate ? ", a new file" : "");

    op = b->waiting;

    b->last = b->start;
    b->waiting = NULL;
    b->tail = &b->waiting;

    if (jn->fill.last != jn->fill.start) {
        if (st->conf->sync) {
            if (!jn->flush.timer_set) {
                ngx_add_timer(&jn->flush, st->conf->sync);
            }

        } else {
            ngx_http_mpns_journal_flush(&jn->flush);
        }
    }

    if (jn->slow.timer_set) {
        for (i = 0; i < NGX_HTTP_MPNS_LANES; i++) {
            if (jn->lanes[i].task->event.active && jn->lanes[i].out.waiting)
            {
                break;
            }
        }

        if (i == NGX_HTTP_MPNS_LANES) {
            ngx_del_timer(&jn->slow);
        }
    }

    /* the answers last: they may record more */

    for ( /* void */ ; op; op = next) {
        next = op->next;

        op->rc = (rc == NGX_OK) ? op->result : rc;
        op->handler(op);
    }
}


static void
ngx_http_mpns_journal_slow(ngx_event_t *ev)
{
    ngx_http_mpns_state_t *st = ev->data;

    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "mpns %V zone \"%V\": a journal write has taken %M ms",
                  &st->format->name, &st->shm_zone->shm.name,
                  ngx_current_msec - st->journal->started);

    ngx_add_timer(ev, NGX_HTTP_MPNS_COMMIT_SLOW);
}


/* the last records of an exiting worker, written and synced here */

static void
ngx_http_mpns_journal_exit(ngx_http_mpns_state_t *st, ngx_log_t *log)
{
    ngx_uint_t                i;
    ngx_http_mpns_io_t       *io;
    ngx_http_mpns_lane_t     *lane;
    ngx_http_mpns_journal_t  *jn;

    jn = st->journal;

    ngx_memory_barrier();

    for (i = 0; i < NGX_HTTP_MPNS_LANES; i++) {
        lane = &jn->lanes[i];

        if (lane->task->event.active) {
            /* done by the thread before it stopped; nobody is answered */
            io = lane->task->ctx;
            lane->fd = io->fd;
            lane->task->event.active = 0;
        }
    }

    if (jn->slow.timer_set) {
        ngx_del_timer(&jn->slow);
    }

    if (jn->flush.timer_set) {
        ngx_del_timer(&jn->flush);
    }

    if (jn->flush.posted) {
        ngx_delete_posted_event(&jn->flush);
    }

    lane = &jn->lanes[0];
    io = lane->task->ctx;

    if (jn->fill.last != jn->fill.start) {
        ngx_http_mpns_journal_start(st, lane);
        ngx_http_mpns_state_io(io);

        if (io->err) {
            ngx_log_error(NGX_LOG_CRIT, log, io->err,
                          "mpns %V zone \"%V\": %s \"%s\" failed",
                          &st->format->name, &st->shm_zone->shm.name,
                          io->failed, io->file);
        }

        lane->fd = io->fd;
    }

    for (i = 0; i < NGX_HTTP_MPNS_LANES; i++) {
        lane = &jn->lanes[i];

        if (lane->fd != NGX_INVALID_FILE
            && ngx_close_file(lane->fd) == NGX_FILE_ERROR)
        {
            ngx_log_error(NGX_LOG_ALERT, log, ngx_errno,
                          ngx_close_file_n " \"%s\" failed", lane->name);
        }

        lane->fd = NGX_INVALID_FILE;
    }
}


/* the snapshot timer, and the next slice of a save */

static void
ngx_http_mpns_state_handler(ngx_event_t *ev)
{
    ngx_http_mpns_state_t *st = ev->data;

    ngx_int_t            rc;
    ngx_http_mpns_io_t  *io;

    if (ngx_exiting || ngx_terminate) {
        /* exit_process saves what is left */
        return;
    }

    if (!st->saving) {
        rc = ngx_http_mpns_state_start(st, ev->log);

        if (rc == NGX_DONE) {
            return;
        }

        if (rc != NGX_OK) {
            if (!ev->timer_set) {
                ngx_add_timer(ev, rc == NGX_BUSY ? NGX_HTTP_MPNS_SAVE_DELAY
                                                 : NGX_HTTP_MPNS_SAVE_RETRY);
            }

            return;
        }
    }

    if (st->task->event.active) {
        return;
    }

    io = st->task->ctx;

    rc = ngx_http_mpns_state_render(st, io, ev->log);

    if (rc == NGX_ERROR) {
        ngx_http_mpns_state_end(st, NGX_ERROR, ev->log);
        return;
    }

    if (ngx_http_mpns_state_post(st->task, st) != NGX_OK) {
        ngx_http_mpns_state_end(st, NGX_ERROR, ev->log);
    }
}


/* NGX_OK: started, NGX_DONE: nothing to save, NGX_BUSY, NGX_ERROR */

static ngx_int_t
ngx_http_mpns_state_start(ngx_http_mpns_state_t *st, ngx_log_t *log)
{
    time_t                     silent;
    ngx_err_t                  err;
    ngx_pid_t                  writer;
    ngx_http_mpns_io_t        *io;
    ngx_http_mpns_state_sh_t  *sh;

    sh = st->sh;

    ngx_shmtx_lock(&st->shpool->mutex);

    if (sh->version == sh->saved || sh->retired) {
        ngx_shmtx_unlock(&st->shpool->mutex);
        return NGX_DONE;
    }

    writer = sh->writer;
    silent = ngx_time() - sh->writing;
    err = 0;

    if (writer && writer != ngx_pid
        && silent < NGX_HTTP_MPNS_WRITER_STALE)
    {
        /* a writer that died leaves its mark: its pid is gone */

        if (kill(writer, 0) == 0 || (err = ngx_errno) != NGX_ESRCH) {
            ngx_shmtx_unlock(&st->shpool->mutex);
            return NGX_BUSY;
        }
    }

    sh->writer = ngx_pid;
    sh->writing = ngx_time();

    /* what is in the zone now is in the snapshot, whatever comes later */

    st->seq = sh->seq;
    st->version = sh->version;
    st->epoch = ++sh->epoch;
    sh->journaled = 0;

    ngx_shmtx_unlock(&st->shpool->mutex);

    if (writer && writer != ngx_pid) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "mpns %V zone \"%V\": process %P stopped writing "
                      "\"%s\" %T s ago, taken over",
                      &st->format->name, &st->shm_zone->shm.name, writer,
                      st->path.data, silent);

        if (err) {
            /* what it left */
            (void) ngx_sprintf(st->buf->start, "%V.%P.tmp%Z", &st->path,
                               writer);
            (void) ngx_delete_file(st->buf->start);
        }
    }

    io = st->task->ctx;

    if (io->fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(io->fd);
        io->fd = NGX_INVALID_FILE;
    }

    ngx_memzero(st->cursor, st->format->cursor_size);
    st->slices = 0;
    st->written = 0;
    st->saving = 1;
    st->last = 0;

    return NGX_OK;
}


/* the next buffer of records for the thread to write */

static ngx_int_t
ngx_http_mpns_state_render(ngx_http_mpns_state_t *st, ngx_http_mpns_io_t *io,
    ngx_log_t *log)
{
    ngx_int_t   rc;
    ngx_buf_t  *b;

    b = st->buf;
    b->pos = b->start;
    b->last = b->start;

    rc = st->format->render(st, st->cursor, b);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_AGAIN && b->last == b->start) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "mpns %V zone \"%V\": a record does not fit the "
                      "state buffer", &st->format->name,
                      &st->shm_zone->shm.name);
        return NGX_ERROR;
    }

    st->last = (rc == NGX_OK);

    io->what = NGX_HTTP_MPNS_IO_SLICE;
    io->data = b->start;
    io->len = b->last - b->start;
    io->err = 0;

    return NGX_OK;
}


/* a step of a save is done: the next one */

static void
ngx_http_mpns_state_done(ngx_event_t *ev)
{
    ngx_http_mpns_state_t *st = ev->data;

    ngx_int_t            rc;
    ngx_http_mpns_io_t  *io;

    io = st->task->ctx;

    if (!st->saving) {
        return;
    }

    rc = ngx_http_mpns_state_step(st, io, ev->log);

    if (rc == NGX_AGAIN) {
        if (io->what == NGX_HTTP_MPNS_IO_SLICE) {
            /* the next slice after the events already waiting */
            ngx_post_event(&st->event, &ngx_posted_next_events);
            return;
        }

        if (ngx_http_mpns_state_post(st->task, st) == NGX_OK) {
            return;
        }

        rc = NGX_ERROR;
    }

    ngx_http_mpns_state_end(st, rc, ev->log);

    if (st->event.timer_set || ngx_exiting || ngx_terminate) {
        return;
    }

    if (rc == NGX_ERROR) {
        ngx_add_timer(&st->event, NGX_HTTP_MPNS_SAVE_RETRY);

    } else if (st->sh->version != st->sh->saved) {
        /* what changed during this save, or what another one had */
        ngx_add_timer(&st->event, st->conf->snapshot);
    }
}


/*
 * After the thread did "io": NGX_AGAIN with the next step set up in "io"
 * (a slice: render it first), NGX_OK: saved, NGX_BUSY: the mark is lost,
 * NGX_ERROR
 */

static ngx_int_t
ngx_http_mpns_state_step(ngx_http_mpns_state_t *st, ngx_http_mpns_io_t *io,
    ngx_log_t *log)
{
    if (io->err) {
        ngx_log_error(NGX_LOG_CRIT, log, io->err, "%s \"%s\" failed",
                      io->failed, io->file);
        return NGX_ERROR;
    }

    switch (io->what) {

    case NGX_HTTP_MPNS_IO_SLICE:

        st->slices++;
        st->written += io->len;

        ngx_log_debug4(NGX_LOG_DEBUG_HTTP, log, 0,
                       "mpns %V zone \"%V\" state slice %ui: %uz bytes",
                       &st->format->name, &st->shm_zone->shm.name,
                       st->slices, io->len);

        if (ngx_http_mpns_state_mark(st) != NGX_OK) {
            return NGX_BUSY;
        }

        if (st->last) {
            io->what = NGX_HTTP_MPNS_IO_SYNC;
        }

        return NGX_AGAIN;

    case NGX_HTTP_MPNS_IO_SYNC:

        /* renewed: nobody takes the mark over between this and the rename */

        if (ngx_http_mpns_state_mark(st) != NGX_OK) {
            return NGX_BUSY;
        }

        io->what = NGX_HTTP_MPNS_IO_COMMIT;
        io->epoch = st->epoch;

        (void) ngx_sprintf(io->checkpoint, "%V-journal.%ui.0%Z", &st->path,
                           st->epoch);

        ngx_http_mpns_state_header(io->record, st->seq,
                                   NGX_HTTP_MPNS_RECORD_CHECKPOINT,
                                   io->record, 0);
        io->record[NGX_HTTP_MPNS_RECORD_HEADER] = LF;

        return NGX_AGAIN;

    default: /* NGX_HTTP_MPNS_IO_COMMIT */

        ngx_log_debug6(NGX_LOG_DEBUG_HTTP, log, 0,
                       "mpns %V zone \"%V\" saved version %uL to \"%s\" "
                       "in %ui slices, %ui journal files removed",
                       &st->format->name, &st->shm_zone->shm.name,
                       st->version, st->path.data, st->slices, io->swept);

        return NGX_OK;
    }
}


/*
 * Renews the writer's mark: NGX_OK, or NGX_BUSY when another worker took
 * it over meanwhile, or a new zone took the file over on reload (their
 * file is the newer one)
 */

static ngx_int_t
ngx_http_mpns_state_mark(ngx_http_mpns_state_t *st)
{
    ngx_int_t  rc;

    ngx_shmtx_lock(&st->shpool->mutex);

    if (st->sh->writer == ngx_pid && !st->sh->retired) {
        st->sh->writing = ngx_time();
        rc = NGX_OK;

    } else {
        rc = NGX_BUSY;
    }

    ngx_shmtx_unlock(&st->shpool->mutex);

    return rc;
}


/*
 * In the master, whenever a zone is set up: NGX_ERROR, logged, if the
 * worker processes cannot create files next to the state file.  Their
 * user is taken for the test, so a directory only root may write stops
 * nginx -t, a start and a reload rather than leaving the zone in memory.
 */

ngx_int_t
ngx_http_mpns_state_check(ngx_http_mpns_state_t *st)
{
    int               ngroups;
    gid_t             egid, *groups;
    u_char           *temp, *p;
    ngx_fd_t          fd;
    ngx_err_t         err;
    ngx_int_t         rc;
    ngx_str_t         dir;
    ngx_uint_t        switched;
    ngx_str_t        *zone, *state;
    ngx_cycle_t      *cycle;
    ngx_core_conf_t  *ccf;

    if (st->path.len == 0) {
        return NGX_OK;
    }

    cycle = st->cycle;
    zone = &st->shm_zone->shm.name;
    state = &st->path;

    temp = ngx_pnalloc(cycle->pool, state->len + sizeof(".") - 1
                                    + NGX_INT64_LEN + sizeof(".tmp"));
    if (temp == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(temp, "%V.%P.tmp%Z", state, ngx_pid);

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    switched = 0;
    groups = NULL;
    ngroups = 0;
    egid = getegid();

    if (geteuid() == 0
        && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT && ccf->user != 0)
    {
        ngroups = getgroups(0, NULL);

        if (ngroups > 0) {
            groups = ngx_palloc(cycle->pool, ngroups * sizeof(gid_t));
            if (groups == NULL) {
                return NGX_ERROR;
            }

            ngroups = getgroups(ngroups, groups);
        }

        if (ngroups == -1) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "getgroups() failed");
            return NGX_ERROR;
        }

        switched = 1;

        if (setegid(ccf->group) == -1
            || initgroups(ccf->username, ccf->group) == -1
            || seteuid(ccf->user) == -1)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "mpns %V zone \"%V\": cannot take the credentials "
                          "of user \"%s\"", &st->format->name, zone,
                          ccf->username);
            rc = NGX_ERROR;
            goto restore;
        }
    }

    rc = NGX_OK;

    fd = ngx_open_file(temp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;

        p = state->data + state->len;

        while (p > state->data && p[-1] != '/') {
            p--;
        }

        dir.data = state->data;
        dir.len = (p > state->data + 1) ? p - 1 - dir.data : p - dir.data;

        ngx_log_error(NGX_LOG_EMERG, cycle->log, err,
                      "mpns %V zone \"%V\": state directory \"%V\" is not "
                      "writable by worker processes: "
                      ngx_open_file_n " \"%s\" failed",
                      &st->format->name, zone, &dir, temp);
        rc = NGX_ERROR;

    } else {
        if (ngx_close_file(fd) == NGX_FILE_ERROR) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                          ngx_close_file_n " \"%s\" failed", temp);
        }

        if (ngx_delete_file(temp) == NGX_FILE_ERROR) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          ngx_delete_file_n " \"%s\" failed", temp);
            rc = NGX_ERROR;
        }
    }

restore:

    if (switched
        && (seteuid(0) == -1 || setgroups(ngroups, groups) == -1
            || setegid(egid) == -1))
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "mpns %V zone \"%V\": cannot take back the "
                      "credentials of the master process",
                      &st->format->name, zone);
        return NGX_ERROR;
    }

    return rc;
}


/* a save ends: saved (NGX_OK), or the temporary file is removed */

static void
ngx_http_mpns_state_end(ngx_http_mpns_state_t *st, ngx_int_t rc,
    ngx_log_t *log)
{
    ngx_http_mpns_io_t  *io;

    io = st->task->ctx;

    if (io->fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(io->fd);
        io->fd = NGX_INVALID_FILE;
    }

    if (rc != NGX_OK
        && ngx_delete_file(st->temp) == NGX_FILE_ERROR
        && ngx_errno != NGX_ENOENT)
    {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      ngx_delete_file_n " \"%s\" failed", st->temp);
    }

    st->saving = 0;

    ngx_http_mpns_status_save(&st->shm_zone->shm.name, rc);

    ngx_shmtx_lock(&st->shpool->mutex);

    if (st->sh->writer == ngx_pid) {
        st->sh->writer = 0;

        if (rc == NGX_OK) {
            st->sh->saved = st->version;
            st->sh->size = st->written;
        }
    }

    ngx_shmtx_unlock(&st->shpool->mutex);
}


/* at exit: a save in the thread is given up, and done here at once */

static void
ngx_http_mpns_state_save_now(ngx_http_mpns_state_t *st, ngx_log_t *log)
{
    ngx_int_t            rc;
    ngx_http_mpns_io_t  *io;
    ngx_thread_task_t   *task;

    task = st->task;
    io = task->ctx;

    if (st->event.timer_set) {
        ngx_del_timer(&st->event);
    }

    if (st->event.posted) {
        ngx_delete_posted_event(&st->event);
    }

    if (st->saving) {
        ngx_memory_barrier();
        task->event.active = 0;
        ngx_http_mpns_state_end(st, NGX_BUSY, log);
    }

    /* another worker saving now saves what this one changed, too */

    if (ngx_http_mpns_state_start(st, log) != NGX_OK) {
        return;
    }

    do {
        rc = ngx_http_mpns_state_render(st, io, log);

        if (rc == NGX_OK) {
            ngx_http_mpns_state_io(io);
            rc = ngx_http_mpns_state_step(st, io, log);

            while (rc == NGX_AGAIN && io->what != NGX_HTTP_MPNS_IO_SLICE) {
                ngx_http_mpns_state_io(io);
                rc = ngx_http_mpns_state_step(st, io, log);
            }
        }

    } while (rc == NGX_AGAIN);

    ngx_http_mpns_state_end(st, rc, log);
}


static ngx_int_t
ngx_http_mpns_state_post(ngx_thread_task_t *task, ngx_http_mpns_state_t *st)
{
    return ngx_thread_task_post(st->conf->thread_pool, task);
}


/* in a thread of the pool */

static void
ngx_http_mpns_state_thread(void *data, ngx_log_t *log)
{
    ngx_http_mpns_state_io(data);
}


/* no log, no shared memory: what failed is left in "io" */

static void
ngx_http_mpns_state_io(ngx_http_mpns_io_t *io)
{
    u_char    *p;
    size_t     len;
    ngx_fd_t   fd;

    io->err = 0;
    p = io->data;
    len = io->len;

    switch (io->what) {

    case NGX_HTTP_MPNS_IO_JOURNAL:

        if (io->rotate) {
            if (io->fd != NGX_INVALID_FILE) {
                /* what it holds was synced by the writes before */
                (void) ngx_close_file(io->fd);
            }

            io->fd = open((char *) io->name, O_WRONLY|O_CREAT|O_EXCL|O_APPEND,
                          NGX_FILE_DEFAULT_ACCESS);

            if (io->fd == NGX_INVALID_FILE) {
                (void) ngx_http_mpns_state_failed(io, ngx_open_file_n,
                                                  io->name);
                return;
            }

            if (ngx_http_mpns_state_sync_dir(io) != NGX_OK) {
                goto failed;
            }
        }

        if (ngx_http_mpns_state_write(io, io->fd, p, len, NULL) != NGX_OK) {
            goto failed;
        }

        if (fdatasync(io->fd) == -1) {
            (void) ngx_http_mpns_state_failed(io, "fdatasync()", NULL);
            goto failed;
        }

        return;

    case NGX_HTTP_MPNS_IO_SLICE:

        if (io->fd == NGX_INVALID_FILE) {
            io->fd = ngx_open_file(io->name, NGX_FILE_WRONLY,
                                   NGX_FILE_TRUNCATE, NGX_FILE_DEFAULT_ACCESS);

            if (io->fd == NGX_INVALID_FILE) {
                (void) ngx_http_mpns_state_failed(io, ngx_open_file_n,
                                                  io->name);
                return;
            }
        }

        (void) ngx_http_mpns_state_write(io, io->fd, p, len, io->name);
        return;

    case NGX_HTTP_MPNS_IO_SYNC:

        fd = io->fd;
        io->fd = NGX_INVALID_FILE;

        if (fsync(fd) == -1) {
            (void) ngx_http_mpns_state_failed(io, "fsync()", io->name);
            (void) ngx_close_file(fd);
            return;
        }

        if (ngx_close_file(fd) == NGX_FILE_ERROR) {
            (void) ngx_http_mpns_state_failed(io, ngx_close_file_n, io->name);
        }

        return;

    default: /* NGX_HTTP_MPNS_IO_COMMIT */

        io->swept = 0;

        if (ngx_rename_file(io->name, io->path) == NGX_FILE_ERROR) {
            (void) ngx_http_mpns_state_failed(io, ngx_rename_file_n,
                                              io->name);
            return;
        }

        if (ngx_http_mpns_state_sync_dir(io) != NGX_OK) {
            return;
        }

        /* then what the snapshot holds, before the journals go */

        fd = ngx_open_file(io->checkpoint, NGX_FILE_WRONLY,
                           NGX_FILE_TRUNCATE, NGX_FILE_DEFAULT_ACCESS);

        if (fd == NGX_INVALID_FILE) {
            (void) ngx_http_mpns_state_failed(io, ngx_open_file_n,
                                              io->checkpoint);
            return;
        }

        if (ngx_http_mpns_state_write(io, fd, io->record,
                                      NGX_HTTP_MPNS_RECORD_HEADER + 1,
                                      io->checkpoint)
            != NGX_OK)
        {
            (void) ngx_close_file(fd);
            return;
        }

        if (fdatasync(fd) == -1) {
            (void) ngx_http_mpns_state_failed(io, "fdatasync()",
                                              io->checkpoint);
            (void) ngx_close_file(fd);
            return;
        }

        (void) ngx_close_file(fd);

        if (ngx_http_mpns_state_sync_dir(io) != NGX_OK) {
            return;
        }

        ngx_http_mpns_state_sweep(io);

        return;
    }

failed:

    (void) ngx_close_file(io->fd);
    io->fd = NGX_INVALID_FILE;
}


static ngx_int_t
ngx_http_mpns_state_write(ngx_http_mpns_io_t *io, ngx_fd_t fd, u_char *p,
    size_t len, u_char *file)
{
    ssize_t  n;

    while (len) {
        n = ngx_write_fd(fd, p, len);

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                continue;
            }

            return ngx_http_mpns_state_failed(io, ngx_write_fd_n, file);
        }

        p += n;
        len -= n;
    }

    return NGX_OK;
}


/* a file made or renamed there is kept once this returns */

static ngx_int_t
ngx_http_mpns_state_sync_dir(ngx_http_mpns_io_t *io)
{
    ngx_fd_t  fd;

    fd = ngx_open_file(io->dir, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        return ngx_http_mpns_state_failed(io, ngx_open_file_n, io->dir);
    }

    if (fsync(fd) == -1) {
        (void) ngx_close_file(fd);
        return ngx_http_mpns_state_failed(io, "fsync()", io->dir);
    }

    (void) ngx_close_file(fd);

    return NGX_OK;
}


/* the journal files of epochs before io->epoch: the snapshot holds them */

static void
ngx_http_mpns_state_sweep(ngx_http_mpns_io_t *io)
{
    u_char      *last;
    size_t       len;
    ngx_dir_t    dir;
    ngx_str_t    name, path;
    ngx_uint_t   epoch, n;
    u_char       file[NGX_MAX_PATH];

    path.data = io->state->path.data;
    path.len = io->state->path.len;

    name.data = io->dir;
    name.len = ngx_strlen(io->dir);

    if (ngx_open_dir(&name, &dir) == NGX_ERROR) {
        (void) ngx_http_mpns_state_failed(io, ngx_open_dir_n, io->dir);
        return;
    }

    for ( ;; ) {
        ngx_set_errno(0);

        if (ngx_read_dir(&dir) == NGX_ERROR) {
            break;
        }

        len = ngx_de_namelen(&dir);

        if (ngx_http_mpns_state_journal_name(&path, ngx_de_name(&dir), len,
                                             &epoch, &n)
            != NGX_OK
            || epoch >= io->epoch
            || name.len + 1 + len + 1 > NGX_MAX_PATH)
        {
            continue;
        }

        last = ngx_cpymem(file, name.data, name.len);
        *last++ = '/';
        last = ngx_cpymem(last, ngx_de_name(&dir), len);
        *last = '\0';

        if (ngx_delete_file(file) != NGX_FILE_ERROR) {
            io->swept++;
        }
    }

    (void) ngx_close_dir(&dir);
}


static ngx_int_t
ngx_http_mpns_state_failed(ngx_http_mpns_io_t *io, const char *call,
    u_char *file)
{
    if (io->err == 0) {
        io->err = ngx_errno;
        io->failed = call;
        io->file = file ? file : io->name;
    }

    return NGX_ERROR;
}


/* the directory part of "path", as "dir/file", "/file" or "file" need */

static void
ngx_http_mpns_state_dir(ngx_str_t *path, ngx_str_t *dir)
{
    u_char  *p;

    p = path->data + path->len;

    while (p > path->data && p[-1] != '/') {
        p--;
    }

    if (p > path->data + 1) {
        p--;
    }

    dir->data = path->data;
    dir->len = p - path->data;
}
