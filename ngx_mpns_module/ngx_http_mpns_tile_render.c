
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_mpns_tile.h"

#include <gd.h>


/*
 * The layout, in fractions of the tile's height: the count at the top
 * right, the lines under the top edge, the title at the bottom left, all
 * inside a margin of 1/28 (12 pixels of a 336 pixel tile).
 */

#define NGX_HTTP_MPNS_TILE_MARGIN       28
#define NGX_HTTP_MPNS_TILE_COUNT_PX     0.22
#define NGX_HTTP_MPNS_TILE_LINE1_PX     0.12
#define NGX_HTTP_MPNS_TILE_LINE_PX      0.09
#define NGX_HTTP_MPNS_TILE_TITLE_PX     0.08

/* DejaVu Sans: the height of digits and capitals, and the descent */
#define NGX_HTTP_MPNS_TILE_CAP          0.73
#define NGX_HTTP_MPNS_TILE_DESCENT      0.24

/* gd works in points at 96 dpi */
#define NGX_HTTP_MPNS_TILE_DPI          96

#define NGX_HTTP_MPNS_TILE_ELLIPSIS     "\xe2\x80\xa6"

/*
 * zlib's fast deflate: a tile takes a fifth less time to draw than with
 * the default level 6, for a sixth more bytes (a medium tile: 6 KB, not 5)
 */
#define NGX_HTTP_MPNS_TILE_ZLIB_LEVEL   3


typedef struct {
    gdImagePtr                  im;
    char                       *font;
    int                         color;
    u_char                     *buf;
    gdFTStringExtra             strex;
} ngx_http_mpns_tile_pen_t;


static char *ngx_http_mpns_tile_text(ngx_http_mpns_tile_pen_t *pen,
    ngx_str_t *text, double px, int x, int y, int width, ngx_uint_t right,
    int *left);
static char *ngx_http_mpns_tile_extent(ngx_http_mpns_tile_pen_t *pen,
    double pt, int *right);
static size_t ngx_http_mpns_tile_prefix(ngx_str_t *text, ngx_uint_t n);
static void ngx_http_mpns_tile_cstring(u_char *buf, u_char *p, size_t len,
    ngx_uint_t ellipsis);
static gdImagePtr ngx_http_mpns_tile_palette(gdImagePtr im);
static void ngx_http_mpns_tile_strex(gdFTStringExtra *strex);
static int ngx_http_mpns_tile_color(uint32_t argb);
static void ngx_http_mpns_tile_free(void *data);


/*
 * Renders a tile as PNG into png, which lives as long as the pool.  On
 * failure *error is libgd's reason, or NULL when memory ran out.
 */

ngx_int_t
ngx_http_mpns_tile_render(ngx_http_mpns_tile_t *tile, u_char *font,
    ngx_pool_t *pool, ngx_str_t *png, char **error)
{
    int                        w, h, m, x, y, end, size, color, bottom;
    char                      *err;
    void                      *data;
    double                     px;
    size_t                     len;
    u_char                     digits[NGX_INT_T_LEN];
    ngx_str_t                  count;
    gdImagePtr                 pal;
    ngx_uint_t                 i;
    ngx_pool_cleanup_t        *cln;
    ngx_http_mpns_tile_pen_t   pen;

    *error = NULL;

    w = (int) tile->width;
    h = (int) tile->height;
    m = h / NGX_HTTP_MPNS_TILE_MARGIN;

    /* the longest text, each "&" written as "&#38;", an ellipsis, NUL */

    len = tile->title.len;

    for (i = 0; i < NGX_HTTP_MPNS_TILE_LINES; i++) {
        len = ngx_max(len, tile->line[i].len);
    }

    pen.buf = ngx_pnalloc(pool, 5 * len + sizeof(NGX_HTTP_MPNS_TILE_ELLIPSIS));
    if (pen.buf == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_mpns_tile_free;
    cln->data = NULL;

    pen.im = gdImageCreateTrueColor(w, h);
    if (pen.im == NULL) {
        *error = "gdImageCreateTrueColor() failed";
        return NGX_ERROR;
    }

    pen.font = (char *) font;
    pen.color = ngx_http_mpns_tile_color(tile->foreground);
    ngx_http_mpns_tile_strex(&pen.strex);

    /* the background replaces the pixels, the text is blended on it */

    color = ngx_http_mpns_tile_color(tile->background);

    for (y = 0; y < h; y++) {
        for (x = 0; x < w; x++) {
            pen.im->tpixels[y][x] = color;
        }
    }

    gdImageAlphaBlending(pen.im, 1);
    gdImageSaveAlpha(pen.im, (tile->background >> 24) != 0xff);

    /* lines that reach the count's height end before it */

    end = w - m;
    bottom = 0;

    if (tile->count) {
        count.data = digits;
        count.len = ngx_sprintf(digits, "%ui", tile->count) - digits;

        px = h * NGX_HTTP_MPNS_TILE_COUNT_PX;
        bottom = m + (int) (px * NGX_HTTP_MPNS_TILE_CAP);

        err = ngx_http_mpns_tile_text(&pen, &count, px, m, bottom, w - 2 * m,
                                      1, &end);
        if (err) {
            goto failed;
        }

        end -= m;
        bottom += m;
    }

    y = m;

    for (i = 0; i < NGX_HTTP_MPNS_TILE_LINES; i++) {

        if (i == 0) {
            px = h * NGX_HTTP_MPNS_TILE_LINE1_PX;
            y += (int) (px * NGX_HTTP_MPNS_TILE_CAP);

        } else {
            /* baseline to baseline, a little more under the larger line 1 */
            px = h * NGX_HTTP_MPNS_TILE_LINE_PX;
            y += (int) (px * (i == 1 ? 1.35 : 1.25));
        }

        x = (y - (int) (px * NGX_HTTP_MPNS_TILE_CAP) < bottom) ? end : w - m;

        err = ngx_http_mpns_tile_text(&pen, &tile->line[i], px, m, y, x - m,
                                      0, NULL);
        if (err) {
            goto failed;
        }
    }

    px = h * NGX_HTTP_MPNS_TILE_TITLE_PX;
    y = h - m - (int) (px * NGX_HTTP_MPNS_TILE_DESCENT);

    err = ngx_http_mpns_tile_text(&pen, &tile->title, px, m, y, w - 2 * m, 0,
                                  NULL);
    if (err) {
        goto failed;
    }

    /* libgd writes no time: the same tile gives the same bytes */

    pal = ngx_http_mpns_tile_palette(pen.im);

    if (pal) {
        gdImageDestroy(pen.im);
        pen.im = pal;
    }

    data = gdImagePngPtrEx(pen.im, &size, NGX_HTTP_MPNS_TILE_ZLIB_LEVEL);

    gdImageDestroy(pen.im);

    if (data == NULL) {
        *error = "gdImagePngPtrEx() failed";
        return NGX_ERROR;
    }

    cln->data = data;

    png->data = data;
    png->len = size;

    return NGX_OK;

failed:

    gdImageDestroy(pen.im);

    *error = err;

    return NGX_ERROR;
}


/*
 * Draws text with its baseline at y, from x (or ending at x + width when
 * right), all of it if it fits in width, else its longest beginning that
 * fits with an ellipsis (by bisection); *left is where it starts.
 */

static char *
ngx_http_mpns_tile_text(ngx_http_mpns_tile_pen_t *pen, ngx_str_t *text,
    double px, int x, int y, int width, ngx_uint_t right, int *left)
{
    int          extent, brect[8];
    char        *err;
    double       pt;
    size_t       len;
    u_char      *p, *last;
    ngx_int_t    lo, hi, mid, best;
    ngx_uint_t   n;

    if (text->len == 0) {
        return NULL;
    }

    pt = px * 72 / NGX_HTTP_MPNS_TILE_DPI;

    ngx_http_mpns_tile_cstring(pen->buf, text->data, text->len, 0);

    err = ngx_http_mpns_tile_extent(pen, pt, &extent);
    if (err) {
        return err;
    }

    if (extent > width) {

        n = 0;
        last = text->data + text->len;

        for (p = text->data; p < last; p++) {
            if ((*p & 0xc0) != 0x80) {
                n++;
            }
        }

        best = -1;
        lo = 0;
        hi = (ngx_int_t) n - 1;

        while (lo <= hi) {
            mid = (lo + hi) / 2;

            len = ngx_http_mpns_tile_prefix(text, mid);
            ngx_http_mpns_tile_cstring(pen->buf, text->data, len, 1);

            err = ngx_http_mpns_tile_extent(pen, pt, &extent);
            if (err) {
                return err;
            }

            if (extent <= width) {
                best = mid;
                lo = mid + 1;

            } else {
                hi = mid - 1;
            }
        }

        if (best < 0) {
            return NULL;
        }

        len = ngx_http_mpns_tile_prefix(text, best);
        ngx_http_mpns_tile_cstring(pen->buf, text->data, len, 1);

        err = ngx_http_mpns_tile_extent(pen, pt, &extent);
        if (err) {
            return err;
        }
    }

    if (right) {
        x += width - extent;
    }

    if (left) {
        *left = x;
    }

    return gdImageStringFTEx(pen->im, brect, pen->color, pen->font, pt, 0.0,
                             x, y, (char *) pen->buf, &pen->strex);
}


static char *
ngx_http_mpns_tile_extent(ngx_http_mpns_tile_pen_t *pen, double pt,
    int *right)
{
    int    brect[8];
    char  *err;

    err = gdImageStringFTEx(NULL, brect, pen->color, pen->font, pt, 0.0, 0, 0,
                            (char *) pen->buf, &pen->strex);
    if (err) {
        return err;
    }

    /* the lower right corner, from a pen that starts at 0 */

    *right = brect[2];

    return NULL;
}


/* the bytes of the first n characters, without trailing spaces */

static size_t
ngx_http_mpns_tile_prefix(ngx_str_t *text, ngx_uint_t n)
{
    u_char  *p, *last;

    last = text->data + text->len;

    for (p = text->data; p < last; p++) {
        if ((*p & 0xc0) != 0x80) {
            if (n == 0) {
                break;
            }

            n--;
        }
    }

    while (p > text->data && p[-1] == ' ') {
        p--;
    }

    return p - text->data;
}


/* libgd decodes "&...;" entities: every "&" goes as "&#38;" */

static void
ngx_http_mpns_tile_cstring(u_char *buf, u_char *p, size_t len,
    ngx_uint_t ellipsis)
{
    u_char  *last;

    for (last = p + len; p < last; p++) {
        if (*p == '&') {
            buf = ngx_cpymem(buf, "&#38;", sizeof("&#38;") - 1);

        } else {
            *buf++ = *p;
        }
    }

    if (ellipsis) {
        buf = ngx_cpymem(buf, NGX_HTTP_MPNS_TILE_ELLIPSIS,
                         sizeof(NGX_HTTP_MPNS_TILE_ELLIPSIS) - 1);
    }

    *buf = '\0';
}


/*
 * The tile as a palette image when it has at most 256 colours, as text of
 * one colour blended on one background has: a quarter of the bytes to
 * compress, and libpng does not try its filters on palette rows.
 */

static gdImagePtr
ngx_http_mpns_tile_palette(gdImagePtr im)
{
    int          x, y, c, last, index, *row;
    int          key[2 * gdMaxColors], value[2 * gdMaxColors];
    u_char      *out;
    uint32_t     slot;
    gdImagePtr   pal;

    pal = gdImageCreate(gdImageSX(im), gdImageSY(im));
    if (pal == NULL) {
        return NULL;
    }

    /* truecolor pixels are 31 bits: -1 is an empty slot */

    ngx_memset(key, 0xff, sizeof(key));

    last = -1;
    index = 0;

    for (y = 0; y < gdImageSY(im); y++) {
        row = im->tpixels[y];
        out = pal->pixels[y];

        for (x = 0; x < gdImageSX(im); x++) {
            c = row[x];

            if (c != last) {
                slot = ((uint32_t) c * 2654435761u) >> 23;

                while (key[slot] != c && key[slot] != -1) {
                    slot = (slot + 1) % (2 * gdMaxColors);
                }

                if (key[slot] == -1) {
                    if (gdImageColorsTotal(pal) == gdMaxColors) {
                        gdImageDestroy(pal);
                        return NULL;
                    }

                    key[slot] = c;
                    value[slot] = gdImageColorAllocateAlpha(pal,
                                      gdTrueColorGetRed(c),
                                      gdTrueColorGetGreen(c),
                                      gdTrueColorGetBlue(c),
                                      gdTrueColorGetAlpha(c));
                }

                index = value[slot];
                last = c;
            }

            out[x] = (u_char) index;
        }
    }

    return pal;
}


/* a font file by its path, never through fontconfig */

static void
ngx_http_mpns_tile_strex(gdFTStringExtra *strex)
{
    ngx_memzero(strex, sizeof(gdFTStringExtra));

    strex->flags = gdFTEX_RESOLUTION|gdFTEX_FONTPATHNAME;
    strex->hdpi = NGX_HTTP_MPNS_TILE_DPI;
    strex->vdpi = NGX_HTTP_MPNS_TILE_DPI;
}


/* 0xAARRGGBB, AA 0xff opaque, to libgd's 7-bit alpha, 127 transparent */

static int
ngx_http_mpns_tile_color(uint32_t argb)
{
    return gdTrueColorAlpha((argb >> 16) & 0xff, (argb >> 8) & 0xff,
                            argb & 0xff, gdAlphaMax - (argb >> 25));
}


static void
ngx_http_mpns_tile_free(void *data)
{
    if (data) {
        gdFree(data);
    }
}


/* NULL if libgd can draw with the font, else its reason */

char *
ngx_http_mpns_tile_font_test(u_char *font)
{
    int              brect[8];
    gdFTStringExtra  strex;

    ngx_http_mpns_tile_strex(&strex);

    return gdImageStringFTEx(NULL, brect, 0, (char *) font, 12.0, 0.0, 0, 0,
                             "0", &strex);
}


/* libgd keeps fonts open in a cache of its own, one per process */

void
ngx_http_mpns_tile_font_release(void)
{
    gdFontCacheShutdown();
}


const char *
ngx_http_mpns_tile_library(void)
{
    return gdVersionString();
}
