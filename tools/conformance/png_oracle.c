/* The PNG oracle of the conformance suite: reads a PNG with libpng (its default CRC and
 * Adler-32 checks) and writes its pixels as a PAM (RGB_ALPHA, 8 or 16 bits a sample, as
 * stored) on stdout. Exit 0 only when libpng raised neither an error nor a warning, so "the
 * oracle reads it" means libpng reads it without complaint.
 *
 * Build: gcc -O2 -o png-oracle png_oracle.c -lpng
 * Usage: png-oracle FILE.png > FILE.pam */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

static int warned;

static void on_error(png_structp png, png_const_charp msg) {
  fprintf(stderr, "libpng error: %s\n", msg);
  png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
  (void)png;
  fprintf(stderr, "libpng warning: %s\n", msg);
  warned = 1;
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  FILE *f = fopen(argv[1], "rb");
  if (!f) return 2;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, on_error, on_warning);
  png_infop info = png_create_info_struct(png);
  if (!png || !info) return 2;
  if (setjmp(png_jmpbuf(png))) return 1;
  png_init_io(png, f);
  /* No limits beyond libpng's defaults: the corpus holds no bombs past 640x480. */
  png_read_png(png, info,
               PNG_TRANSFORM_EXPAND | PNG_TRANSFORM_GRAY_TO_RGB,
               NULL);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  int depth = png_get_bit_depth(png, info), channels = png_get_channels(png, info);
  png_bytepp rows = png_get_rows(png, info);
  if (warned) return 1;
  int bytes = depth == 16 ? 2 : 1;
  printf("P7\nWIDTH %u\nHEIGHT %u\nDEPTH 4\nMAXVAL %d\nTUPLTYPE RGB_ALPHA\nENDHDR\n", w, h,
         depth == 16 ? 65535 : 255);
  for (png_uint_32 y = 0; y < h; y++) {
    for (png_uint_32 x = 0; x < w; x++) {
      png_bytep px = rows[y] + (size_t)x * channels * bytes;
      fwrite(px, 1, 3 * bytes, stdout);
      if (channels == 4) fwrite(px + 3 * bytes, 1, bytes, stdout);
      else fwrite(depth == 16 ? "\xff\xff" : "\xff", 1, bytes, stdout);
    }
  }
  return fflush(stdout) == 0 ? 0 : 2;
}
