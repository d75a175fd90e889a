
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_TILE_H_INCLUDED_
#define _NGX_HTTP_MPNS_TILE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* bumped whenever a change of the drawing alters the bytes of a tile */
#define NGX_HTTP_MPNS_TILE_LAYOUT       "1"

#define NGX_HTTP_MPNS_TILE_LINES        3


/* what a tile shows; colours are 0xAARRGGBB, count 0 draws no count */

typedef struct {
    ngx_uint_t                  width;
    ngx_uint_t                  height;
    uint32_t                    background;
    uint32_t                    foreground;
    ngx_uint_t                  count;
    ngx_str_t                   title;
    ngx_str_t                   line[NGX_HTTP_MPNS_TILE_LINES];
} ngx_http_mpns_tile_t;


ngx_int_t ngx_http_mpns_tile_render(ngx_http_mpns_tile_t *tile, u_char *font,
    ngx_pool_t *pool, ngx_str_t *png, char **error);
char *ngx_http_mpns_tile_font_test(u_char *font);
void ngx_http_mpns_tile_font_release(void);
const char *ngx_http_mpns_tile_library(void);


#endif /* _NGX_HTTP_MPNS_TILE_H_INCLUDED_ */
