"""Speed measurements: training throughput against a reference ResNet, chapter and book wall times, the degradation clock.

``python -m tools.bench`` (``tools/bench/``, one module per measurement; also ``python -m resnet_course bench`` in a clone) measures, in one run,
and prints:

* **machine**: CPU model, cores, torch and torchvision versions, the device, the load average
  (a busy machine slows every figure below; the load says how busy it was).
* **throughput**: training images/s of the course's CIFAR ResNet-20 and ResNet-56 against
  :class:`ReferenceResNet`, the same network written the way torchvision writes ``resnet.py``.
  Three trainers run interleaved on identical sizes, each with the same SGD step
  (momentum 0.9, weight decay 1e-4, foreach on the CPU, fused on CUDA):

  - *reference*: the reference network in a plain loop (forward, loss, backward, step) on
    a batch made beforehand;
  - *course network*: the course's network in that same plain loop, so the ratio
    compares the networks and nothing else;
  - *course loop*: the course's network trained by :class:`~resnet_course.train.TrainingRun`
    (``fit``'s loop), which also slices, augments and normalises every batch and reads the
    loss, so the ratio is what a reader of the course gets.

  Warm-up steps are excluded; every repetition times ``--steps`` steps of each trainer in
  turn (the order rotates), and a ratio is the median over repetitions of the course's
  images/s divided by the reference's in the same repetition, so load that drifts during
  the run affects both sides alike.
  A fourth trainer, *tutorial*, is the usual tutorial pipeline (a ``Dataset`` with torchvision
  transforms and a ``DataLoader``); ``fit / tutorial`` is paired the same way.
* **chapters**: the wall time of every ``chapters/*.ipynb`` executed with nbclient under each
  preset of ``--chapter-presets`` (default ``cpu``, the preset that also builds the book),
  one after another from an empty run cache, as on a fresh machine, and their sum, the whole
  book (takes minutes; ``--no-chapters`` skips it).
* **degradation**: chapter 1's experiment, plain-20 and plain-56 trained with the preset's
  settings, one step of each in turn. Plain-56 is *behind* at step ``s`` when the mean of
  its last ``--window`` step losses is above plain-20's at the same step. The clock reports
  the first step from which plain-56 stays behind until the end of training, and the
  seconds both networks together had trained by then (data loading excluded).

``--only throughput,machine`` picks parts, ``--json PATH`` saves every figure.
"""
