/*
 * vlm compatibility header standing in for the audio decoding library that
 * llama.cpp's tools/mtmd/mtmd-helper.cpp includes from its vendor/ folder,
 * which the Go module zip of the pinned llama.cpp does not contain.
 *
 * Written for vlm. It declares only the names mtmd-helper.cpp uses and makes
 * every decoder call fail, so audio input is rejected with an error: vlm does
 * not support audio. Nothing here is taken from another project.
 */
#ifndef VLM_COMPAT_MINIAUDIO_H
#define VLM_COMPAT_MINIAUDIO_H

/* The real library pulls in the C standard headers below, and mtmd-helper.cpp
 * relies on them (va_copy, memcmp, strerror, errno, FILE). */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef MA_API
#define MA_API
#endif

typedef uint32_t ma_uint32;
typedef uint64_t ma_uint64;
typedef int ma_result;

/* Result codes: success and the one failure every call returns. */
#define MA_SUCCESS 0
#define MA_NOT_IMPLEMENTED (-29)

typedef enum { ma_format_unknown = 0, ma_format_f32 = 5 } ma_format;

typedef struct {
    ma_format format;
    ma_uint32 channels;
    ma_uint32 sampleRate;
} ma_decoder_config;

typedef struct {
    int unused;
} ma_decoder;

MA_API ma_decoder_config ma_decoder_config_init(ma_format format, ma_uint32 channels, ma_uint32 sampleRate) {
    ma_decoder_config c;
    c.format = format;
    c.channels = channels;
    c.sampleRate = sampleRate;
    return c;
}

MA_API ma_result ma_decoder_init_memory(const void *data, size_t size, const ma_decoder_config *config, ma_decoder *decoder) {
    (void)data; (void)size; (void)config;
    if (decoder) decoder->unused = 0;
    return MA_NOT_IMPLEMENTED;
}

MA_API ma_result ma_decoder_get_length_in_pcm_frames(ma_decoder *decoder, ma_uint64 *length) {
    (void)decoder;
    if (length) *length = 0;
    return MA_NOT_IMPLEMENTED;
}

MA_API ma_result ma_decoder_read_pcm_frames(ma_decoder *decoder, void *frames, ma_uint64 count, ma_uint64 *read) {
    (void)decoder; (void)frames; (void)count;
    if (read) *read = 0;
    return MA_NOT_IMPLEMENTED;
}

MA_API ma_result ma_decoder_uninit(ma_decoder *decoder) {
    (void)decoder;
    return MA_SUCCESS;
}

#endif /* VLM_COMPAT_MINIAUDIO_H */
