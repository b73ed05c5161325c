/* checkpoint.c — model weights files (see checkpoint.h). */
#include "models/checkpoint.h"

#include <stdlib.h>
#include <string.h>

#include "core/conv_choice.h"

bk_status bk_model_write(const bk_model *m, bk_h5 *f, const bk_ckpt_meta *meta) {
    bk_status st;
    if ((st = bk_h5_set_attr_str(f, "format", BK_CKPT_FORMAT)) != BK_OK ||
        (st = bk_h5_set_attr_int(f, "version", BK_CKPT_VERSION)) != BK_OK ||
        (st = bk_h5_set_attr_str(f, "model", m->kind->name)) != BK_OK ||
        (st = bk_h5_set_attr_str(f, "variant", m->variant)) != BK_OK ||
        (st = bk_h5_set_attr_int(f, "step", meta ? meta->step : 0)) != BK_OK ||
        (st = bk_h5_set_attr_int(f, "epoch", meta ? meta->epoch : 0)) != BK_OK ||
        (st = bk_h5_set_attr_str(f, "config", meta && meta->config ? meta->config : "")) != BK_OK ||
        (st = bk_h5_set_attr_str(f, "kernels", meta && meta->kernels ? meta->kernels : "")) != BK_OK)
        return st;
    return bk_params_save(&m->params, f, "");
}

bk_status bk_model_save(const bk_model *m, const char *path, const bk_ckpt_meta *meta) {
    bk_h5 f;
    bk_status st = bk_h5_create(&f, path);
    if (st != BK_OK) return st;
    st = bk_model_write(m, &f, meta);
    bk_status closed = bk_h5_close(&f, st == BK_OK);
    return st != BK_OK ? st : closed;
}

bk_status bk_ckpt_read_kind(const bk_h5 *f, char *model, size_t model_len, char *variant,
                            size_t variant_len) {
    char format[64] = "";
    int64_t version = 0;
    bk_status st = bk_h5_get_attr_str(f, "format", format, sizeof format);
    if (st == BK_ERR_IO) return st; /* damaged: the message says so */
    if (st != BK_OK || strcmp(format, BK_CKPT_FORMAT) != 0)
        return bk_fail(BK_ERR_FORMAT, "%s: not a bokehlab checkpoint (root attribute format is \"%s\", "
                       "expected \"%s\")", f->path, format, BK_CKPT_FORMAT);
    if ((st = bk_h5_get_attr_int(f, "version", &version)) == BK_ERR_IO) return st;
    if (st != BK_OK || version != BK_CKPT_VERSION)
        return bk_fail(BK_ERR_FORMAT, "%s: checkpoint version %lld, this bokehlab reads version %d",
                       f->path, (long long)version, BK_CKPT_VERSION);
    if ((st = bk_h5_get_attr_str(f, "model", model, model_len)) == BK_OK)
        st = bk_h5_get_attr_str(f, "variant", variant, variant_len);
    if (st == BK_ERR_IO) return st;
    if (st != BK_OK) return bk_fail(BK_ERR_FORMAT, "%s: the checkpoint does not say which model it holds", f->path);
    return BK_OK;
}

bk_status bk_model_read(bk_model *m, const bk_h5 *f) {
    char model[64], variant[128];
    bk_status st = bk_ckpt_read_kind(f, model, sizeof model, variant, sizeof variant);
    if (st != BK_OK) return st;
    if (strcmp(model, m->kind->name) != 0)
        return bk_fail(BK_ERR_FORMAT, "%s holds a %s model, not %s", f->path, model, m->kind->name);
    if (strcmp(variant, m->variant) != 0)
        return bk_fail(BK_ERR_FORMAT, "%s holds %s with variant \"%s\", not \"%s\"", f->path, model,
                       variant, m->variant);
    return bk_params_load(&((bk_model *)m)->params, f, "");
}

bk_status bk_ckpt_read_kernels(bk_ctx *ctx, const bk_h5 *f) {
    if (!bk_h5_has_attr(f, "kernels")) return BK_OK;
    size_t cap = (size_t)1 << 20;
    char *text = malloc(cap);
    if (!text) return bk_fail(BK_ERR_IO, "out of memory");
    bk_status st = bk_h5_get_attr_str(f, "kernels", text, cap);
    if (st == BK_OK) st = bk_conv_choices_parse(ctx, text, f->path);
    free(text);
    return st;
}

bk_status bk_model_load(bk_ctx *ctx, const char *path, bk_model **out) {
    *out = NULL;
    bk_h5 f;
    bk_status st = bk_h5_open(&f, path);
    if (st != BK_OK) return st;
    char model[64], variant[128];
    if ((st = bk_ckpt_read_kind(&f, model, sizeof model, variant, sizeof variant)) == BK_OK) {
        if ((st = bk_model_create(ctx, model, variant, 0, out)) != BK_OK) {
            st = bk_fail(st, "%s: %s", path, bk_last_error()); /* an unknown model or switch */
        } else if ((st = bk_model_read(*out, &f)) != BK_OK || (st = bk_ckpt_read_kernels(ctx, &f)) != BK_OK) {
            bk_model_free(ctx, *out);
            *out = NULL;
        }
    }
    bk_h5_close(&f, false);
    return st;
}
