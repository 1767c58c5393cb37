// Meta's reference PDQ on raw pixels: binary PPM (P6) files in, "hash quality file" lines out.
// Built by reference.py against a ThreatExchange checkout; the luma, filter, DCT and bits are all
// the reference's own (pdq/cpp/hashing/pdqhashing.cpp), only the image decoding is left out.
#include <pdq/cpp/hashing/pdqhashing.h>

#include <cstdio>
#include <vector>

using namespace facebook::pdq::hashing;

int main(int argc, char** argv) {
  for (int a = 1; a < argc; a++) {
    FILE* f = fopen(argv[a], "rb");
    int w, h, maxval;
    if (!f || fscanf(f, "P6 %d %d %d", &w, &h, &maxval) != 3 || maxval != 255) {
      fprintf(stderr, "%s: not an 8-bit binary PPM\n", argv[a]);
      return 1;
    }
    fgetc(f);
    std::vector<uint8_t> rgb(3 * (size_t)w * h);
    if (fread(rgb.data(), 1, rgb.size(), f) != rgb.size()) {
      fprintf(stderr, "%s: short\n", argv[a]);
      return 1;
    }
    fclose(f);
    std::vector<float> luma((size_t)w * h), scratch((size_t)w * h);
    fillFloatLumaFromRGB(&rgb[0], &rgb[1], &rgb[2], h, w, 3 * w, 3, luma.data());
    float b64x64[64][64], b16x64[16][64], b16x16[16][16];
    Hash256 hash;
    int quality;
    pdqHash256FromFloatLuma(
        luma.data(), scratch.data(), h, w, b64x64, b16x64, b16x16, hash, quality);
    printf("%s %d %s\n", hash.format().c_str(), quality, argv[a]);
  }
  return 0;
}
