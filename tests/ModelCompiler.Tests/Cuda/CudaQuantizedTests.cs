using ModelCompiler.Backends.Cuda;
using ModelCompiler.Backends.Quantization;
using ModelCompiler.Backends.Reference;
using ModelCompiler.IR;
using ModelCompiler.Runtime;
using ModelCompiler.Tests.CpuTarget;
using ModelCompiler.Tests.Quantization;
using Xunit.Abstractions;
using RefInterpreter = ModelCompiler.Backends.Reference.Interpreter;

namespace ModelCompiler.Tests.Cuda;

/// <summary>
/// Quantized linears on the cuda kernels (ILGPU's CPU accelerator): the codes stay compressed on the device and both
/// paths, the GEMV that converts codes in registers (few rows) and the per-call expansion for the GEMM (prefill), give
/// the interpreter's logits within 1e-4 for int8, AWQ int4 (int4 codes with zero points, and input scales) and W8A8
/// (activations rounded per row). The simulator runs a thread per GPU thread, so plain int4 (a subset of AWQ's path) is left out.
/// </summary>
public sealed class CudaQuantizedTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("int8", null)]
    [InlineData("awq-int4", 32)]
    [InlineData("w8a8", null)]
    public void QuantizedLinearsRunInKernelsAndMatchTheInterpreter(string scheme, int? group)
    {
        using var h = new QuantHarness("llama", null, "n_layers=1");
        var (graph, context, load) = h.Quantize(new QuantizeRequest(scheme, group));
        // Prefill: the oracle's [2, 12] ids (24 rows: the GEMM path); decode-sized: 3 ids (the GEMV path).
        var cases = new[] { (h.Ids.Shape, h.Ids.Data), (Shape: new long[] { 1, 3 }, Data: new long[] { 5, 17, 2 }) };
        Assert.True(cases[0].Shape.Aggregate(1L, (a, d) => a * d) >= CudaModel.PrefillRows && 3 < CudaModel.PrefillRows);
        var references = cases.Select(c => new RefInterpreter(graph).Run(
            new Dictionary<string, RefTensor> { ["input_ids"] = RefTensor.FromInts(c.Shape, c.Data) }, load)["logits"]).ToList();
        new ModelCompiler.Passes.PassManager(CudaBackend.Pipeline).Run(graph);
        using var device = GpuDevice.Open(simulate: true);
        using var model = new CudaModel(graph, device);
        model.LoadWeights(QuantizedWeights.Floats(context.Weights, h.Store.ReadFloat32));
        for (int i = 0; i < cases.Length; i++)
        {
            var gpu = model.Run(new Dictionary<string, HostTensor> { ["input_ids"] = HostTensor.FromInts(cases[i].Shape, cases[i].Data) })["logits"];
            double difference = CpuHarness.Difference(references[i], gpu);
            output.WriteLine($"{scheme} [{string.Join(",", cases[i].Shape)}]: {difference:E3}");
            Assert.True(difference <= 1e-4, $"{scheme}: cuda-sim logits differ from the interpreter's by {difference:E3} (relative)");
            Assert.DoesNotContain(OpKind.QuantizedLinear, model.HostFallbacks.Keys);
        }
    }
}
