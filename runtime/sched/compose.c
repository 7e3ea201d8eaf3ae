/*
 * sched/compose.c -- schedulers made of schedulers: Sequential (one after
 * another at milestones, PyTorch's SequentialLR) and Chained (all of them
 * each step, ChainedScheduler).  The engine retains the children.
 */
#include "kind.h"

static int check_children(const char *name, const lg_sched_opts *o,
                          lg_optim *opt, bool restartable) {
  for (int i = 0; i < o->nchildren; i++) {
    lg_sched *c = o->children[i];
    LG_SCHED_CHECK(c->opt == opt,
                   "sched.%s: scheduler %d belongs to another optimizer", name,
                   i + 1);
    LG_SCHED_CHECK(!(c->def->flags & LG_SCHEDF_METRIC),
                   "sched.%s: %s needs a metric and cannot be a child", name,
                   c->def->name);
    LG_SCHED_CHECK(!restartable || !(c->def->flags & LG_SCHEDF_COMPOSITE),
                   "sched.%s: scheduler %d is a %s, which cannot be "
                   "restarted",
                   name, i + 1, c->def->name);
  }
  return 0;
}

static int no_epoch(lg_sched *s, const double *epoch) {
  LG_SCHED_CHECK(!epoch, "sched.%s: cannot step to a given epoch",
                 s->def->name);
  return 0;
}

/* ---- Sequential ---- */

struct sequential_state {
  int64_t *milestones;
  int nmilestones;
};

static int sequential_check(const lg_sched_opts *o, lg_optim *opt) {
  if (check_children("Sequential", o, opt, true) < 0)
    return -1;
  LG_SCHED_CHECK(o->nmilestones == o->nchildren - 1,
                 "sched.Sequential: expected %d milestones for %d "
                 "schedulers, got %d",
                 o->nchildren - 1, o->nchildren, o->nmilestones);
  for (int i = 1; i < o->nmilestones; i++)
    LG_SCHED_CHECK(o->milestones[i] >= o->milestones[i - 1],
                   "sched.Sequential: milestones must be increasing");
  return 0;
}

/* SequentialLR.__init__ */
static int sequential_init(lg_sched *s, const lg_sched_opts *o, void *cc) {
  struct sequential_state *st = s->state;
  st->milestones = lg_sched_copy_list(s, o->milestones, o->nmilestones, false);
  if (!st->milestones)
    return -1;
  st->nmilestones = o->nmilestones;
  s->last_epoch = 0;
  s->step_count = 0;
  for (int g = 0; g < s->ngroups; g++) {
    double v;
    if (lg_sched_group_get(s, g, "initial_lr", &v) < 0 ||
        lg_sched_group_set(s, g, "lr", v) < 0)
      return -1;
    s->base_lrs[g] = v;
  }
  for (int i = 0; i < s->nchildren; i++)
    s->children[i]->last_epoch -= 1;
  lg_sched *first = s->children[0];
  first->step_count = 0;
  if (lg_sched_step(first, cc) < 0)
    return -1;
  memcpy(s->last_lrs, first->last_lrs, sizeof(double) * s->ngroups);
  return 0;
}

static void sequential_release(lg_sched *s) {
  free(LG_SCHED_STATE(s, struct sequential_state)->milestones);
}

/* SequentialLR.step() */
static int sequential_step(lg_sched *s, const double *epoch, void *cc) {
  struct sequential_state *st = s->state;
  if (no_epoch(s, epoch) < 0)
    return -1;
  int64_t e = s->last_epoch + 1;
  int idx = 0;
  while (idx < st->nmilestones && st->milestones[idx] <= e)
    idx++;
  lg_sched *child = s->children[idx];
  int rc;
  if (idx > 0 && st->milestones[idx - 1] == e)
    rc = lg_sched_step_epoch(child, 0, cc);
  else
    rc = lg_sched_step(child, cc);
  if (rc < 0)
    return -1;
  s->last_epoch = e;
  s->step_count++;
  memcpy(s->last_lrs, child->last_lrs, sizeof(double) * s->ngroups);
  return 0;
}

static int sequential_fields(lg_sched *s, lg_sched_field *out) {
  struct sequential_state *st = s->state;
  out[0] = LG_SF_I64S("milestones", st->milestones, st->nmilestones);
  return 1;
}

static const lg_sched_opt sequential_opts[] = {
    LG_SO_CHILDREN, LG_SO_MILESTONES(LG_SOPT_REQUIRED), LG_SO_END};

const lg_sched_kind_def lg_schedk_sequential = {
    .name = "Sequential",
    .opts = sequential_opts,
    .state_size = sizeof(struct sequential_state),
    .flags = LG_SCHEDF_COMPOSITE,
    .check = sequential_check,
    .init = sequential_init,
    .step = sequential_step,
    .fields = sequential_fields,
    .release = sequential_release};

/* ---- Chained ---- */

static int chained_check(const lg_sched_opts *o, lg_optim *opt) {
  return check_children("Chained", o, opt, false);
}

static int chained_init(lg_sched *s, const lg_sched_opts *o, void *cc) {
  (void)o, (void)cc;
  if (lg_sched_read_lrs(s, s->last_lrs) < 0)
    return -1;
  memcpy(s->base_lrs, s->last_lrs, sizeof(double) * s->ngroups);
  return 0;
}

static int chained_step(lg_sched *s, const double *epoch, void *cc) {
  if (no_epoch(s, epoch) < 0)
    return -1;
  for (int i = 0; i < s->nchildren; i++)
    if (lg_sched_step(s->children[i], cc) < 0)
      return -1;
  s->last_epoch++;
  s->step_count++;
  return lg_sched_read_lrs(s, s->last_lrs);
}

static const lg_sched_opt chained_opts[] = {LG_SO_CHILDREN, LG_SO_END};

const lg_sched_kind_def lg_schedk_chained = {
    .name = "Chained",
    .opts = chained_opts,
    .flags = LG_SCHEDF_COMPOSITE,
    .check = chained_check,
    .init = chained_init,
    .step = chained_step};
