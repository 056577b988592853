/* SPDX-License-Identifier: MIT */
/*
 * virtq_drv.c - the driver (guest) side of a virtqueue, format-independent
 * part: bookkeeping arrays and dispatch to the split/packed halves. Used by
 * tests as the mock guest and later by libvblk. Trusts its own memory; the
 * device it talks to is the code under test.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "virtq/virtq_internal.h"
#include "virtq/virtq_packed_event.h"

/*
 * virtq_drv_init - zero *d, record the areas, allocate next_free, tokens
 * and chain_len (num entries each), then let the format set up its free
 * list and indices. Split needs num a power of two; both need 1..32768.
 */
int virtq_drv_init(struct virtq_drv *d, unsigned num, bool packed, bool event_idx,
		   void *desc, void *driver, void *device)
{
	int ret;

	if (!d || num == 0 || num > VIRTQ_MAX_SIZE || !desc || !driver || !device)
		return -EINVAL;
	if (!packed && (num & (num - 1)))
		return -EINVAL;
	memset(d, 0, sizeof(*d));
	d->num = num;
	d->packed = packed;
	d->event_idx = event_idx;
	if (packed) {
		d->pdesc = desc;
		d->driver_event = driver;
		d->device_event = device;
	} else {
		d->desc = desc;
		d->avail = driver;
		d->used = device;
	}
	d->next_free = calloc(num, sizeof(*d->next_free));
	d->tokens = calloc(num, sizeof(*d->tokens));
	d->chain_len = calloc(num, sizeof(*d->chain_len));
	if (!d->next_free || !d->tokens || !d->chain_len) {
		ret = -ENOMEM;
		goto err_free_arrays;
	}
	ret = packed ? virtq_drv_init_packed(d) : virtq_drv_init_split(d);
	if (ret)
		goto err_free_arrays;
	return 0;

err_free_arrays:
	virtq_drv_fini(d);
	return ret;
}

void virtq_drv_fini(struct virtq_drv *d)
{
	free(d->next_free);
	free(d->tokens);
	free(d->chain_len);
	d->next_free = NULL;
	d->tokens = NULL;
	d->chain_len = NULL;
}

int virtq_drv_add(struct virtq_drv *d, const struct virtq_drv_buf *bufs,
		  unsigned out, unsigned in, void *token,
		  void *indirect_table, uint64_t indirect_addr)
{
	/* A NULL token could not be told apart from "nothing used". */
	if (out + in == 0 || !token)
		return -EINVAL;
	return d->packed ? virtq_drv_add_packed(d, bufs, out, in, token, indirect_table,
						indirect_addr)
			 : virtq_drv_add_split(d, bufs, out, in, token, indirect_table,
					       indirect_addr);
}

bool virtq_drv_has_used(const struct virtq_drv *d)
{
	if (!d->packed)
		return virtq_get16(&d->used->idx) != d->last_used;
	return virtq_pflags_is_used(virtq_get16(&d->pdesc[d->last_used].flags),
				    d->used_wrap_counter);
}

bool virtq_drv_kick_prepare(struct virtq_drv *d)
{
	return d->packed ? virtq_drv_kick_prepare_packed(d) : virtq_drv_kick_prepare_split(d);
}

void *virtq_drv_get_used(struct virtq_drv *d, uint32_t *len)
{
	return d->packed ? virtq_drv_get_used_packed(d, len) : virtq_drv_get_used_split(d, len);
}

void virtq_drv_enable_cb(struct virtq_drv *d)
{
	if (d->packed)
		virtq_drv_enable_cb_packed(d);
	else
		virtq_drv_enable_cb_split(d);
}

void virtq_drv_disable_cb(struct virtq_drv *d)
{
	if (d->packed)
		virtq_drv_disable_cb_packed(d);
	else
		virtq_drv_disable_cb_split(d);
}
