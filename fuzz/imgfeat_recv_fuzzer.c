/*
 * imgfeat_recv_fuzzer.c — libFuzzer harness for imgfeat's binary input
 * (imgfeat_parse_binary, what imgfeat_recv runs). The input is the message
 * bytes as imgfeat_recv receives them: int16 dim, int16 reserved, dim float4,
 * network byte order.
 *
 * Invariants: no crash, no out-of-bounds access (the values buffer is sized as
 * imgfeat_recv sizes it, from the length alone), no UB; a rejected message has
 * a known status; an accepted one is exactly 4 + 4 * dim bytes with 1..16000
 * finite elements, is what imgfeat_send writes back byte for byte, and reads
 * back from its text forms bit for bit.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* as imgfeat_recv: a valid value has exactly this many elements */
	int			cap = size < 4 ? 0 : (int) ((size - 4) / 4 < IMGFEAT_MAX_DIM ? (size - 4) / 4 : IMGFEAT_MAX_DIM);
	float	   *values = malloc(sizeof(float) * (size_t) cap + 1);
	int			dim = -1;
	ImgfeatParseError err;
	ImgfeatStatus status;

	status = imgfeat_parse_binary(data, size, -1, values, cap, &dim, &err);
	FUZZ_CHECK(err.status == status);
	if (status == IMGFEAT_OK)
	{
		size_t		len;
		uint8_t    *again;

		FUZZ_CHECK(dim >= 1 && dim <= IMGFEAT_MAX_DIM && dim == cap);
		FUZZ_CHECK(size == 4 + 4 * (size_t) dim);
		FUZZ_CHECK(imgfeat_values_valid(dim, values));
		again = fuzz_format_binary(dim, values, &len);
		FUZZ_CHECK(len == size && memcmp(again, data, size) == 0);
		free(again);
		fuzz_check_round_trips(dim, values);
	}
	else
	{
		FUZZ_CHECK(fuzz_binary_status_ok(status));
		FUZZ_CHECK(dim == 0);
		FUZZ_CHECK(status == IMGFEAT_ERR_SHORT_HEADER ? size < 4 : size >= 4);
		if (status == IMGFEAT_ERR_NAN || status == IMGFEAT_ERR_INF)
			FUZZ_CHECK(err.index >= 0 && err.index < cap);
		if (status == IMGFEAT_ERR_LENGTH)
			FUZZ_CHECK(size - 4 != 4 * (size_t) err.dim);
	}
	free(values);
	return 0;
}
