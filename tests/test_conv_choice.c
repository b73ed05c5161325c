/* test_conv_choice.c — the per-geometry convolution algorithm choice (core/conv_choice.h):
 * the policy variable, timing on first use, the text stored in checkpoints and read back, and
 * that a loaded choice is what runs. Winograd's numbers against PyTorch are in test_parity
 * (parity_conv2d_winograd). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conv_choice.h"
#include "models/checkpoint.h"
#include "tests/support/harness.h"

/* 2x32x48x40 -> 32, 3x3, pad 1: fits Winograd and is above the timing threshold. */
static bk_conv_geom big_geom(bk_shape *xs, bk_shape *ws) {
    *xs = (bk_shape){2, 32, 48, 40};
    *ws = (bk_shape){32, 32, 3, 3};
    return bk_conv_geom_make(*xs, *ws, bk_conv_opts_make(1, 1, 1), 0);
}

static void policy_variable_is_checked(void) {
    bk_ctx ctx;
    setenv("BOKEHLAB_CONV_ALGO", "wino", 1);
    bk_status st = bk_ctx_init(&ctx);
    EXPECT(st != BK_OK && strstr(bk_last_error(), "BOKEHLAB_CONV_ALGO='wino'"), "a bad policy was accepted (%s)",
           bk_last_error());
    const char *ok[] = {"auto", "direct", "winograd", ""};
    const int want[] = {BK_CONV_UNDECIDED, BK_CONV_DIRECT, BK_CONV_WINOGRAD, BK_CONV_UNDECIDED};
    for (int i = 0; i < 4; i++) {
        setenv("BOKEHLAB_CONV_ALGO", ok[i], 1);
        st = bk_ctx_init(&ctx);
        EXPECT(st == BK_OK && ctx.conv_policy == want[i], "policy '%s': status %d, policy %d", ok[i], st,
               ctx.conv_policy);
        if (st == BK_OK) bk_ctx_free(&ctx);
    }
    unsetenv("BOKEHLAB_CONV_ALGO");
}

static void winograd_fits_only_its_geometries(void) {
    bk_shape xs, ws;
    bk_conv_geom g = big_geom(&xs, &ws);
    bk_conv_geom c40 = bk_conv_geom_make((bk_shape){1, 40, 16, 16}, (bk_shape){3, 40, 3, 3}, bk_conv_opts_make(1, 1, 1), 0);
    EXPECT(bk_conv_winograd_fits(&g) && bk_conv_winograd_fits(&c40), "3x3 s1 p1 32->32 and 40->3 should fit");
    bk_conv_geom s2 = bk_conv_geom_make(xs, ws, bk_conv_opts_make(2, 1, 1), 0);
    bk_conv_geom p2 = bk_conv_geom_make(xs, (bk_shape){32, 32, 5, 5}, bk_conv_opts_make(1, 2, 1), 0);
    bk_conv_geom k1 = bk_conv_geom_make(xs, (bk_shape){32, 32, 1, 1}, bk_conv_opts_make(1, 0, 1), 0);
    bk_conv_geom grp = bk_conv_geom_make(xs, (bk_shape){32, 16, 3, 3}, bk_conv_opts_make(1, 1, 2), 0);
    bk_conv_geom tr = bk_conv_geom_make(xs, ws, bk_conv_opts_make(1, 1, 1), 1);
    EXPECT(!bk_conv_winograd_fits(&s2) && !bk_conv_winograd_fits(&p2) && !bk_conv_winograd_fits(&k1) &&
               !bk_conv_winograd_fits(&grp) && !bk_conv_winograd_fits(&tr),
           "a geometry outside Winograd's constraints was accepted");
}

/* Runs forward, backward data and backward weights of the big geometry once. */
static void run_three_directions(bk_ctx *ctx, uint64_t seed) {
    bk_shape xs, ws;
    bk_conv_geom g = big_geom(&xs, &ws);
    bk_tensor *x = bk_test_tensor(ctx, xs, -1, 1, seed);
    bk_tensor *w = bk_test_tensor(ctx, ws, -0.1f, 0.1f, seed + 1);
    bk_tensor *y = bk_conv_fwd(ctx, x, w, NULL, &g, bk_act_none(), NULL);
    bk_conv_bwd_data(ctx, y, w, &g);
    bk_conv_bwd_weights(ctx, x, y, &g);
    bk_step_end(ctx);
}

static void first_use_is_timed_then_kept(void) {
    bk_ctx *ctx = bk_test_ctx();
    ctx->conv_policy = BK_CONV_UNDECIDED; /* the automatic choice is what is tested */
    run_three_directions(ctx, 1);
    char *text = bk_conv_choices_text(ctx);
    EXPECT(strstr(text, "conv2d 2x32x48x40 -> 32 k3x3 s1x1 p1,1,1,1 g1: fwd=") != NULL,
           "no decision recorded for the timed geometry:\n%s", text);
    EXPECT(strstr(text, "=-") == NULL, "a direction was left undecided:\n%s", text);
    /* a second pass runs the chosen kernels only: no new primitives */
    uint64_t made = ctx->stats.primitives_created;
    run_three_directions(ctx, 2);
    EXPECT(ctx->stats.primitives_created == made, "the second pass created %llu primitives",
           (unsigned long long)(ctx->stats.primitives_created - made));
    char *again = bk_conv_choices_text(ctx);
    EXPECT(strcmp(text, again) == 0, "the decisions changed:\n%s\nthen\n%s", text, again);
    free(text);
    free(again);
}

static void small_problems_run_direct_untimed(void) {
    bk_ctx *ctx = bk_test_ctx();
    ctx->conv_policy = BK_CONV_UNDECIDED; /* the automatic choice is what is tested */
    bk_conv_geom g = bk_conv_geom_make((bk_shape){1, 16, 8, 8}, (bk_shape){16, 16, 3, 3}, bk_conv_opts_make(1, 1, 1), 0);
    bk_tensor *x = bk_test_tensor(ctx, (bk_shape){1, 16, 8, 8}, -1, 1, 3);
    bk_tensor *w = bk_test_tensor(ctx, (bk_shape){16, 16, 3, 3}, -1, 1, 4);
    bk_conv_fwd(ctx, x, w, NULL, &g, bk_act_none(), NULL);
    char *text = bk_conv_choices_text(ctx);
    EXPECT(text[0] == 0 && ctx->stats.winograd_runs == 0, "a small conv was timed or ran Winograd:\n%s", text);
    free(text);
}

/* A choice read from text is the one that runs, in each direction, without timing. */
static void loaded_choices_are_obeyed(void) {
    const char *lines[2] = {
        "conv2d 2x32x48x40 -> 32 k3x3 s1x1 p1,1,1,1 g1: fwd=winograd bwd_data=winograd bwd_weights=winograd\n",
        "conv2d 2x32x48x40 -> 32 k3x3 s1x1 p1,1,1,1 g1: fwd=direct bwd_data=direct bwd_weights=direct\n"};
    /* primitives a timed first use creates: both algorithms' */
    bk_ctx timed;
    BK_CHECK(bk_ctx_init(&timed) == BK_OK, "%s", bk_last_error());
    run_three_directions(&timed, 5);
    uint64_t timed_made = timed.stats.primitives_created;
    bk_ctx_free(&timed);
    for (int i = 0; i < 2; i++) {
        bk_ctx ctx;
        BK_CHECK(bk_ctx_init(&ctx) == BK_OK, "%s", bk_last_error());
        EXPECT(bk_conv_choices_parse(&ctx, lines[i], "test") == BK_OK, "%s", bk_last_error());
        uint64_t made0 = ctx.stats.primitives_created;
        run_three_directions(&ctx, 5);
        uint64_t want = i == 0 ? 3 : 0;
        EXPECT(ctx.stats.winograd_runs == want, "choice %d: %llu Winograd runs, expected %llu", i,
               (unsigned long long)ctx.stats.winograd_runs, (unsigned long long)want);
        /* untimed: only the chosen algorithm's kernels were created */
        EXPECT(ctx.stats.primitives_created - made0 < timed_made, "choice %d: %llu primitives created, as many "
               "as timing both algorithms (%llu)", i, (unsigned long long)(ctx.stats.primitives_created - made0),
               (unsigned long long)timed_made);
        char *text = bk_conv_choices_text(&ctx);
        EXPECT(strcmp(text, lines[i]) == 0, "round trip: '%s' became '%s'", lines[i], text);
        free(text);
        bk_ctx_free(&ctx);
    }
}

static void malformed_text_is_refused_with_its_line(void) {
    bk_ctx *ctx = bk_test_ctx();
    EXPECT(bk_conv_choices_parse(ctx, "direct", "old.h5") == BK_OK, "the old 'direct' value: %s", bk_last_error());
    EXPECT(bk_conv_choices_parse(ctx, "", "empty.h5") == BK_OK, "an empty value: %s", bk_last_error());
    const char *bad[] = {
        "conv2d 2x32x48x40 -> 32 k3x3 s1x1 p1,1,1,1 g1: fwd=direct bwd_data=direct bwd_weights=direct\nnonsense",
        "conv2d 2x32x48x40 -> 32 k3x3 s1x1 p1,1,1,1 g1: fwd=fast bwd_data=direct bwd_weights=direct",
        "conv2d 2x40x48x40 -> 40 k3x3 s2x2 p1,1,1,1 g1: fwd=winograd bwd_data=direct bwd_weights=direct",
        "conv2d 2x32x48x40 -> 32 k3x3 s1x1 p1,1,1,1 g1: fwd=direct bwd_data=direct bwd_weights=direct extra",
        "conv2d 0x32x48x40 -> 32 k3x3 s1x1 p1,1,1,1 g1: fwd=direct bwd_data=direct bwd_weights=direct",
    };
    const char *line[] = {"line 2", "line 1", "line 1", "line 1", "line 1"};
    for (int i = 0; i < 5; i++) {
        bk_status st = bk_conv_choices_parse(ctx, bad[i], "ck.h5");
        EXPECT(st == BK_ERR_FORMAT && strstr(bk_last_error(), "ck.h5") && strstr(bk_last_error(), line[i]),
               "case %d: status %d, message '%s'", i, st, bk_last_error());
    }
}

/* The checkpoint carries the choices: written from one context, read into a fresh one. */
static void checkpoints_carry_the_choices(void) {
    bk_ctx *ctx = bk_test_ctx();
    char *dir = bk_test_tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/m.h5", dir);
    bk_model *m;
    BK_CHECK(bk_model_create(ctx, "dmshn", "", 1, &m) == BK_OK, "%s", bk_last_error());
    const char *text = "conv2d 1x32x64x64 -> 32 k3x3 s1x1 p1,1,1,1 g1: fwd=winograd bwd_data=- bwd_weights=direct\n";
    bk_ckpt_meta meta = {.step = 3, .kernels = text};
    EXPECT(bk_model_save(m, path, &meta) == BK_OK, "%s", bk_last_error());
    bk_ctx fresh;
    BK_CHECK(bk_ctx_init(&fresh) == BK_OK, "%s", bk_last_error());
    bk_model *back;
    EXPECT(bk_model_load(&fresh, path, &back) == BK_OK, "%s", bk_last_error());
    char *got = bk_conv_choices_text(&fresh);
    EXPECT(strcmp(got, text) == 0, "kernels read back as '%s'", got);
    free(got);
    bk_model_free(&fresh, back);
    bk_ctx_free(&fresh);
    bk_model_free(ctx, m);
    bk_test_remove_tmpdir(dir);
}

BK_TEST_MAIN(BK_TEST(policy_variable_is_checked), BK_TEST(winograd_fits_only_its_geometries),
             BK_TEST(first_use_is_timed_then_kept), BK_TEST(small_problems_run_direct_untimed),
             BK_TEST(loaded_choices_are_obeyed), BK_TEST(malformed_text_is_refused_with_its_line),
             BK_TEST(checkpoints_carry_the_choices))
