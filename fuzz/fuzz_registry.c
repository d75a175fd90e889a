
/*
 * Copyright (C) ngx_mpns_module authors
 */


/*
 * The state files of a registry zone as the master loads them: the lines
 * of the snapshot and the records of the journals, through the line
 * loader and the replay of ngx_http_mpns_state.c into the registry.  Any
 * content loads (what is wrong is skipped); what the zone then writes as
 * a snapshot loads into a zone that writes it the same, one line per
 * entry.
 */


#include "ngx_http_mpns_registry.c"
#include "fuzz.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ngx_http_mpns_state_t *ngx_http_mpns_fuzz_registry(
    ngx_shm_zone_t *shm_zone);


static ngx_shm_zone_t            ngx_http_mpns_fuzz_zone;
static ngx_http_mpns_registry_t  ngx_http_mpns_fuzz_reg;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_uint_t  lines;

    lines = ngx_http_mpns_fuzz_state(&ngx_http_mpns_fuzz_zone,
                                     ngx_http_mpns_fuzz_registry, data, size);

    ngx_http_mpns_fuzz_assert(lines == ngx_http_mpns_fuzz_reg.sh->count);

    return 0;
}


static ngx_http_mpns_state_t *
ngx_http_mpns_fuzz_registry(ngx_shm_zone_t *shm_zone)
{
    ngx_http_mpns_registry_t  *reg;

    reg = &ngx_http_mpns_fuzz_reg;

    ngx_memzero(reg, sizeof(ngx_http_mpns_registry_t));

    reg->shm_zone = shm_zone;
    reg->file.format = &ngx_http_mpns_registry_format;
    reg->file.data = reg;
    reg->file.shm_zone = shm_zone;

    shm_zone->init = ngx_http_mpns_registry_init_zone;
    shm_zone->data = reg;

    return &reg->file;
}
