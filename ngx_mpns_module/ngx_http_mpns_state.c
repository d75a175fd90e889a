
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_http_mpns_state.h"
#include "ngx_http_mpns_status.h"


/*
 * The state file of a zone: one record per line, written anew by the
 * workers about a second after a change and read by the master when it
 * makes the zone.  The owner (the registry, the outbox) renders and parses
 * its records; everything else is here.
 *
 * A version counter in the zone tells whether anything changed since the
 * last save.  One worker writes at a time: it puts its mark in the zone
 * and renews it after every slice; a mark not renewed for
 * NGX_HTTP_MPNS_WRITER_STALE seconds is a writer that died (or hangs), and
 * the next worker that saves takes it over.  A writer that finds its mark
 * gone does not rename its file over the newer one.
 */


#define NGX_HTTP_MPNS_SAVE_DELAY        1000
#define NGX_HTTP_MPNS_SAVE_RETRY        5000
#define NGX_HTTP_MPNS_WRITER_STALE      10


static ngx_int_t ngx_http_mpns_state_line(ngx_http_mpns_state_t *st,
    ngx_pool_t *pool, ngx_str_t *text, ngx_uint_t line, ngx_log_t *log);
static void ngx_http_mpns_state_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_mpns_state_save(ngx_http_mpns_state_t *st,
    ngx_log_t *log, ngx_uint_t slices);
static ngx_int_t ngx_http_mpns_state_start(ngx_http_mpns_state_t *st,
    ngx_log_t *log);
static ngx_int_t ngx_http_mpns_state_slice(ngx_http_mpns_state_t *st,
    ngx_log_t *log);
static ngx_int_t ngx_http_mpns_state_mark(ngx_http_mpns_state_t *st);
static ngx_int_t ngx_http_mpns_state_commit(ngx_http_mpns_state_t *st,
    ngx_log_t *log);
static void ngx_http_mpns_state_end(ngx_http_mpns_state_t *st, ngx_int_t rc,
    ngx_log_t *log);
static void ngx_http_mpns_state_dir(ngx_str_t *path, ngx_str_t *dir);


char *
ngx_http_mpns_state_path(ngx_conf_t *cf, ngx_http_mpns_state_t *st,
    ngx_str_t *path)
{
    u_char           *dir;
    ngx_err_t         err;
    ngx_str_t         name;
    ngx_file_info_t   fi;

    st->path = *path;

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


ngx_int_t
ngx_http_mpns_state_load(ngx_http_mpns_state_t *st, ngx_log_t *log)
{
    u_char      *buf, *pos, *last, *end, *lf;
    ssize_t      n;
    ngx_fd_t     fd;
    ngx_err_t    err;
    ngx_int_t    rc;
    ngx_str_t    text;
    ngx_uint_t   line, loaded, eof, skip;
    ngx_file_t   file;
    ngx_pool_t  *pool;

    if (st->path.len == 0 || ngx_test_config) {
        return NGX_OK;
    }

    fd = ngx_open_file(st->path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;

        if (err == NGX_ENOENT) {
            return NGX_OK;
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
    loaded = 0;
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
                        loaded++;
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
            loaded++;

        } else if (rc == NGX_BUSY) {
            break;

        } else if (rc == NGX_ERROR) {
            goto done;
        }

        ngx_reset_pool(pool);
    }

    st->sh->saved = st->sh->version;

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "mpns %V zone \"%V\": loaded %ui entries from \"%s\"",
                  &st->format->name, &st->shm_zone->shm.name, loaded,
                  st->path.data);

    if (st->outdated) {
        /* the first worker writes it in today's format */
        st->sh->version++;

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "mpns %V zone \"%V\": \"%s\" is in an older format "
                      "and will be written anew", &st->format->name,
                      &st->shm_zone->shm.name, st->path.data);
    }

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


ngx_int_t
ngx_http_mpns_state_init_process(ngx_http_mpns_state_t *st,
    ngx_cycle_t *cycle)
{
    ngx_fd_t   fd;
    ngx_str_t  dir;

    if (st->path.len == 0) {
        return NGX_OK;
    }

    st->temp = ngx_pnalloc(cycle->pool, st->path.len + sizeof(".") - 1
                                        + NGX_INT64_LEN + sizeof(".tmp"));
    if (st->temp == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(st->temp, "%V.%P.tmp%Z", &st->path, ngx_pid);

    st->fd = NGX_INVALID_FILE;

    st->buf = ngx_create_temp_buf(cycle->pool, st->format->buffer_size);
    st->cursor = ngx_pcalloc(cycle->pool, st->format->cursor_size);

    if (st->buf == NULL || st->cursor == NULL) {
        return NGX_ERROR;
    }

    /* not cancelable: a graceful stop saves before it ends */

    st->event.handler = ngx_http_mpns_state_handler;
    st->event.data = st;
    st->event.log = cycle->log;

    if (ngx_worker != 0) {
        return NGX_OK;
    }

    /*
     * the master (often root) reads the file, the workers write it:
     * tell now, not at the first change, when they cannot
     */

    fd = ngx_open_file(st->temp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_http_mpns_state_dir(&st->path, &dir);

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

    /* what was migrated on reload or loaded from an older format */

    if (st->sh->version != st->sh->saved) {
        ngx_add_timer(&st->event, NGX_HTTP_MPNS_SAVE_DELAY);
    }

    return NGX_OK;
}


void
ngx_http_mpns_state_exit_process(ngx_http_mpns_state_t *st,
    ngx_cycle_t *cycle)
{
    ngx_uint_t  n;

    if (st->event.handler == NULL) {
        return;
    }

    /* all at once now; another worker may be writing: wait a little */

    for (n = 0; n < 100; n++) {
        if (ngx_http_mpns_state_save(st, cycle->log, NGX_MAX_UINT32_VALUE)
            != NGX_BUSY)
        {
            break;
        }

        ngx_msleep(10);
    }
}


void
ngx_http_mpns_state_changed(ngx_http_mpns_state_t *st)
{
    /* in the master (loading, migrating) there is no timer */

    if (st->event.handler && !st->event.timer_set) {
        ngx_add_timer(&st->event, NGX_HTTP_MPNS_SAVE_DELAY);
    }
}


static void
ngx_http_mpns_state_handler(ngx_event_t *ev)
{
    ngx_http_mpns_state_t *st = ev->data;

    ngx_int_t  rc;

    rc = ngx_http_mpns_state_save(st, ev->log, 1);

    if (rc == NGX_OK) {
        return;
    }

    if (rc == NGX_AGAIN) {
        /* the next slice after the events already waiting */
        ngx_post_event(ev, &ngx_posted_next_events);
        return;
    }

    if (rc == NGX_ERROR && (ngx_exiting || ngx_terminate)) {
        /* exit_process tries once more; the timer must not keep us */
        return;
    }

    if (!ev->timer_set) {
        ngx_add_timer(ev, rc == NGX_BUSY ? NGX_HTTP_MPNS_SAVE_DELAY
                                         : NGX_HTTP_MPNS_SAVE_RETRY);
    }
}


/*
 * A save renders the records a buffer at a time and writes it; "slices"
 * bounds the buffers written in this call, so that a large zone does not
 * stall the worker: the rest follows on later turns of the event loop.
 * Records changed meanwhile are saved again next time: the version the
 * save started from is what it records as saved.
 *
 * NGX_OK: saved or nothing to save; NGX_AGAIN: more slices to write;
 * NGX_BUSY: another process is saving; NGX_ERROR: logged, still dirty.
 */

static ngx_int_t
ngx_http_mpns_state_save(ngx_http_mpns_state_t *st, ngx_log_t *log,
    ngx_uint_t slices)
{
    ngx_int_t   rc;
    ngx_uint_t  n;

    if (!st->saving) {
        rc = ngx_http_mpns_state_start(st, log);

        if (rc != NGX_OK) {
            return (rc == NGX_DONE) ? NGX_OK : rc;
        }
    }

    for (n = 0; n < slices; n++) {
        rc = ngx_http_mpns_state_slice(st, log);

        if (rc == NGX_AGAIN) {
            rc = ngx_http_mpns_state_mark(st);

            if (rc == NGX_OK) {
                continue;
            }

        } else if (rc == NGX_OK) {
            rc = ngx_http_mpns_state_commit(st, log);
        }

        ngx_http_mpns_state_end(st, rc, log);

        return rc;
    }

    return NGX_AGAIN;
}


/* NGX_OK: started, NGX_DONE: nothing to save, NGX_BUSY, NGX_ERROR */

static ngx_int_t
ngx_http_mpns_state_start(ngx_http_mpns_state_t *st, ngx_log_t *log)
{
    time_t                     silent;
    ngx_pid_t                  writer;
    ngx_http_mpns_state_sh_t  *sh;

    sh = st->sh;

    ngx_shmtx_lock(&st->shpool->mutex);

    if (sh->version == sh->saved || sh->retired) {
        ngx_shmtx_unlock(&st->shpool->mutex);
        return NGX_DONE;
    }

    writer = sh->writer;
    silent = ngx_time() - sh->writing;

    if (writer && writer != ngx_pid
        && silent < NGX_HTTP_MPNS_WRITER_STALE)
    {
        ngx_shmtx_unlock(&st->shpool->mutex);
        return NGX_BUSY;
    }

    sh->writer = ngx_pid;
    sh->writing = ngx_time();
    st->version = sh->version;

    ngx_shmtx_unlock(&st->shpool->mutex);

    if (writer && writer != ngx_pid) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "mpns %V zone \"%V\": process %P stopped writing "
                      "\"%s\" %T s ago, taken over",
                      &st->format->name, &st->shm_zone->shm.name, writer,
                      st->path.data, silent);
    }

    st->fd = ngx_open_file(st->temp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                           NGX_FILE_DEFAULT_ACCESS);

    if (st->fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      ngx_open_file_n " \"%s\" failed", st->temp);
        ngx_http_mpns_state_end(st, NGX_ERROR, log);
        return NGX_ERROR;
    }

    ngx_memzero(st->cursor, st->format->cursor_size);
    st->slices = 0;
    st->saving = 1;

    return NGX_OK;
}


/* one buffer of records; NGX_AGAIN: more to come, NGX_OK: all written */

static ngx_int_t
ngx_http_mpns_state_slice(ngx_http_mpns_state_t *st, ngx_log_t *log)
{
    u_char     *p;
    ssize_t     n;
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

    for (p = b->start; p < b->last; p += n) {
        n = ngx_write_fd(st->fd, p, b->last - p);

        if (n == -1) {
            ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                          ngx_write_fd_n " \"%s\" failed", st->temp);
            return NGX_ERROR;
        }
    }

    st->slices++;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, log, 0,
                   "mpns %V zone \"%V\" state slice %ui: %uz bytes",
                   &st->format->name, &st->shm_zone->shm.name, st->slices,
                   (size_t) (b->last - b->start));

    return rc;
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


/* sync and close the temporary file, then rename it over the state file */

static ngx_int_t
ngx_http_mpns_state_commit(ngx_http_mpns_state_t *st, ngx_log_t *log)
{
    ngx_fd_t  fd;

    fd = st->fd;
    st->fd = NGX_INVALID_FILE;

    if (fsync(fd) == -1) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      "fsync() \"%s\" failed", st->temp);
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      ngx_close_file_n " \"%s\" failed", st->temp);
        return NGX_ERROR;
    }

    /* renewed: nobody takes the mark over between this and the rename */

    if (ngx_http_mpns_state_mark(st) != NGX_OK) {
        return NGX_BUSY;
    }

    if (ngx_rename_file(st->temp, st->path.data) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      ngx_rename_file_n " \"%s\" to \"%s\" failed",
                      st->temp, st->path.data);
        return NGX_ERROR;
    }

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, log, 0,
                   "mpns %V zone \"%V\" saved version %uL to \"%s\" "
                   "in %ui slices", &st->format->name,
                   &st->shm_zone->shm.name, st->version, st->path.data,
                   st->slices);

    return NGX_OK;
}


/* a save ends: saved (NGX_OK), or the temporary file is removed */

static void
ngx_http_mpns_state_end(ngx_http_mpns_state_t *st, ngx_int_t rc,
    ngx_log_t *log)
{
    if (rc != NGX_OK) {
        if (st->fd != NGX_INVALID_FILE) {
            (void) ngx_close_file(st->fd);
        }

        if (ngx_delete_file(st->temp) == NGX_FILE_ERROR
            && ngx_errno != NGX_ENOENT)
        {
            ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                          ngx_delete_file_n " \"%s\" failed", st->temp);
        }
    }

    st->fd = NGX_INVALID_FILE;
    st->saving = 0;

    ngx_http_mpns_status_save(&st->shm_zone->shm.name, rc);

    ngx_shmtx_lock(&st->shpool->mutex);

    if (st->sh->writer == ngx_pid) {
        st->sh->writer = 0;

        if (rc == NGX_OK) {
            st->sh->saved = st->version;
        }
    }

    ngx_shmtx_unlock(&st->shpool->mutex);
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
