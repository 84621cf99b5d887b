/*
 * vlm compatibility header standing in for the image decoding library that
 * llama.cpp's tools/mtmd/mtmd-helper.cpp includes from its vendor/ folder,
 * which the Go module zip of the pinned llama.cpp does not contain.
 *
 * Written for vlm. vlm decodes images in Go (memory-safe) and hands mtmd RGB
 * pixels, so the C decoder is never needed: the one decoding call always
 * fails and mtmd's helper reports "failed to decode image bytes". Nothing here
 * is taken from another project.
 */
#ifndef VLM_COMPAT_STB_IMAGE_H
#define VLM_COMPAT_STB_IMAGE_H

#include <stddef.h>
#include <stdlib.h>

typedef unsigned char stbi_uc;

static inline stbi_uc *stbi_load_from_memory(const stbi_uc *buffer, int len, int *x, int *y,
                                             int *channels_in_file, int desired_channels) {
    (void)buffer; (void)len; (void)desired_channels;
    if (x) *x = 0;
    if (y) *y = 0;
    if (channels_in_file) *channels_in_file = 0;
    return NULL;
}

static inline void stbi_image_free(void *data) { free(data); }

#endif /* VLM_COMPAT_STB_IMAGE_H */
