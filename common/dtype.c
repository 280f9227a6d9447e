/* Host-side dtype conversions (see dtype.h). */
#include "dtype.h"

#include <string.h>

const char *rd_dtype_name(enum rd_dtype d)
{
    switch (d) {
    case RD_DTYPE_F32: return "fp32";
    case RD_DTYPE_BF16: return "bf16";
    case RD_DTYPE_F16: return "fp16";
    }
    return "?";
}

int rd_dtype_parse(const char *s)
{
    if (!s) return -1;
    if (!strcmp(s, "fp32") || !strcmp(s, "float32") || !strcmp(s, "f32")) return RD_DTYPE_F32;
    if (!strcmp(s, "bf16") || !strcmp(s, "bfloat16")) return RD_DTYPE_BF16;
    if (!strcmp(s, "fp16") || !strcmp(s, "float16") || !strcmp(s, "f16")) return RD_DTYPE_F16;
    return -1;
}

size_t rd_dtype_size(enum rd_dtype d) { return d == RD_DTYPE_F32 ? 4 : 2; }

float rd_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t rd_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float rd_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t rd_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* overflow -> inf */
    if (abs < 0x38800000u) {                                    /* subnormal or zero */
        if (abs < 0x33000000u) return (uint16_t)sign;
        uint32_t e = abs >> 23;
        uint32_t m = (abs & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = abs + 0xfffu + ((abs >> 13) & 1u) - ((127 - 15) << 23);
    return (uint16_t)(sign | (r >> 13));
}

void rd_convert_to_f32(float *dst, const void *src, enum rd_dtype t, size_t n)
{
    const uint16_t *h = src;
    switch (t) {
    case RD_DTYPE_F32: memmove(dst, src, n * 4); break;
    case RD_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = rd_bf16_to_f32(h[i]);
        break;
    case RD_DTYPE_F16:
        for (size_t i = 0; i < n; i++) dst[i] = rd_f16_to_f32(h[i]);
        break;
    }
}

void rd_convert_from_f32(void *dst, const float *src, enum rd_dtype t, size_t n)
{
    uint16_t *h = dst;
    switch (t) {
    case RD_DTYPE_F32: memmove(dst, src, n * 4); break;
    case RD_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) h[i] = rd_f32_to_bf16(src[i]);
        break;
    case RD_DTYPE_F16:
        for (size_t i = 0; i < n; i++) h[i] = rd_f32_to_f16(src[i]);
        break;
    }
}
