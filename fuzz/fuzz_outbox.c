
/*
 * Copyright (C) ngx_mpns_module authors
 */


/*
 * The state files of an outbox zone as the master loads them: the lines
 * of the snapshot and the records of the journals, through the line
 * loader and the replay of ngx_http_mpns_state.c into the outbox, sends
 * in flight made pending again.  Any content loads (what is wrong is
 * skipped); what the zone then writes as a snapshot loads into a zone
 * that writes it the same, one line per entry.
 */


#include "ngx_http_mpns_outbox.c"
#include "fuzz.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ngx_http_mpns_state_t *ngx_http_mpns_fuzz_outbox(
    ngx_shm_zone_t *shm_zone);


static ngx_shm_zone_t          ngx_http_mpns_fuzz_zone;
static ngx_http_mpns_outbox_t  ngx_http_mpns_fuzz_ob;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_uint_t  lines;

    lines = ngx_http_mpns_fuzz_state(&ngx_http_mpns_fuzz_zone,
                                     ngx_http_mpns_fuzz_outbox, data, size);

    ngx_http_mpns_fuzz_assert(lines == ngx_http_mpns_fuzz_ob.sh->count);

    return 0;
}


static ngx_http_mpns_state_t *
ngx_http_mpns_fuzz_outbox(ngx_shm_zone_t *shm_zone)
{
    ngx_http_mpns_outbox_t  *ob;

    ob = &ngx_http_mpns_fuzz_ob;

    ngx_memzero(ob, sizeof(ngx_http_mpns_outbox_t));

    ob->shm_zone = shm_zone;
    ob->file.format = &ngx_http_mpns_outbox_format;
    ob->file.data = ob;
    ob->file.shm_zone = shm_zone;

    shm_zone->init = ngx_http_mpns_outbox_init_zone;
    shm_zone->data = ob;

    return &ob->file;
}
