import pytest
import torch
import torch.nn as nn

from slimpose.engine.ema import WeightAverage
from slimpose.errors import ConfigError


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_average_ramps_its_decay_and_averages_parameters_and_bn_statistics():
    net = _net()
    start = {k: v.clone() for k, v in net.state_dict().items()}
    ema = WeightAverage(net, decay=0.99)
    assert ema.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    net.train()(torch.randn(8, 3))  # moves the BN statistics and counts a batch
    ema.step(net)
    want = 0.1 * start["0.weight"] + 0.9 * net[0].weight.detach()
    assert torch.allclose(ema.average["0.weight"], want)
    want_mean = 0.1 * start["1.running_mean"] + 0.9 * net[1].running_mean
    assert torch.allclose(ema.average["1.running_mean"], want_mean)
    assert ema.average["1.num_batches_tracked"].item() == 1
    for _ in range(10_000):
        ema.step(net)
    assert ema.current_decay() == pytest.approx(0.99)
    assert torch.allclose(ema.average["0.weight"], net[0].weight.detach(), atol=1e-6)


def test_applied_swaps_the_average_in_and_restores_the_weights():
    net = _net()
    ema = WeightAverage(net, decay=0.5)
    own = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(2.0)
    trained = net[0].weight.detach().clone()
    ema.step(net)
    with ema.applied(net):
        assert torch.allclose(net[0].weight, 0.1 * own + 0.9 * trained)
    assert torch.equal(net[0].weight, trained)
    ema.copy_to(net)
    assert torch.equal(net[0].weight, ema.average["0.weight"])
    ema.reset(net, steps=7)
    assert ema.steps == 7 and torch.equal(ema.average["0.weight"], net[0].weight)


def test_an_interval_averages_every_nth_step_with_the_decay_raised_to_it():
    net = _net()
    ema = WeightAverage(net, decay=0.9, interval=4)
    start = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
    for _ in range(3):
        ema.step(net)
    assert torch.equal(ema.average["0.weight"], start)
    ema.step(net)  # 4th step: the first update, with the ramp's 0.1
    assert torch.allclose(ema.average["0.weight"], 0.1 * start + 0.9 * net[0].weight.detach())
    ema.reset(net, steps=4 * 1000)
    assert ema.current_decay() == pytest.approx(0.9 ** 4)
    with pytest.raises(ConfigError, match="train.ema_interval"):
        WeightAverage(net, 0.9, interval=0)


@pytest.mark.parametrize("decay", [1.0, -0.1, 1.5])
def test_decay_outside_the_open_interval_names_the_field(decay):
    with pytest.raises(ConfigError, match="train.ema_decay"):
        WeightAverage(_net(), decay)
