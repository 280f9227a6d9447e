/* Element types and the host-side conversions between them (bf16/fp16 <-> fp32).
 * Conversions round to nearest even, as torch does. */
#ifndef RD_DTYPE_H
#define RD_DTYPE_H

#include <stddef.h>
#include <stdint.h>

enum rd_dtype { RD_DTYPE_F32 = 0, RD_DTYPE_BF16, RD_DTYPE_F16 };

const char *rd_dtype_name(enum rd_dtype d);
/* parses "fp32"/"float32"/"f32", "bf16"/"bfloat16", "fp16"/"float16"/"f16"; -1 when unknown */
int rd_dtype_parse(const char *s);
size_t rd_dtype_size(enum rd_dtype d);

float rd_bf16_to_f32(uint16_t h);
uint16_t rd_f32_to_bf16(float f);
float rd_f16_to_f32(uint16_t h);
uint16_t rd_f32_to_f16(float f);

/* Converts n elements of type src_type at src into fp32 at dst. */
void rd_convert_to_f32(float *dst, const void *src, enum rd_dtype src_type, size_t n);
/* Converts n fp32 elements into dst_type at dst. */
void rd_convert_from_f32(void *dst, const float *src, enum rd_dtype dst_type, size_t n);

#endif
