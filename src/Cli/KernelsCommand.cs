using System.CommandLine;
using System.Text.Json;
using ModelCompiler.Backends.Cuda;

namespace ModelCompiler.Cli;

/// <summary>
/// <c>mc kernels</c>: times the CUDA target's tensor-core kernels (pipelined fp16 GEMM, FlashAttention) and the SIMT
/// kernels beside them on the GPU, with sampled errors against float64 and what each kernel's PTX contains; the
/// bench/gpu/kernels.py script adds PyTorch's figures from the same run.
/// </summary>
internal static class KernelsCommand
{
    public static Command Create(CliContext cli)
    {
        var gemm = new Option<int>("--gemm-size") { Description = "GEMM m = n = k (a multiple of 128)", DefaultValueFactory = _ => 4096 };
        var seq = new Option<int>("--seq") { Description = "attention sequence length (a multiple of 128)", DefaultValueFactory = _ => 4096 };
        var batches = new Option<int>("--batches") { Description = "timed batches of back-to-back launches (the median is reported)", DefaultValueFactory = _ => 9 };
        var dump = new Option<string?>("--dump") { Description = "folder for raw inputs/outputs (fp16 bits, fp32) that a PyTorch script compares" };
        var simt = new Option<bool>("--simt") { Description = "also time the SIMT fp32 GEMM and attention kernels at the same shapes" };
        var json = CommonOptions.Json();
        var command = new Command("kernels", "Time the CUDA tensor-core kernels (fp16 GEMM, FlashAttention) on the GPU and check their outputs.")
        {
            gemm, seq, batches, dump, simt, json,
        };
        command.SetAction(parse =>
        {
            int n = parse.GetValue(gemm), s = parse.GetValue(seq);
            if (n <= 0 || n % 128 != 0 || s <= 0 || s % 128 != 0)
                throw new Runtime.McException($"--gemm-size and --seq must be positive multiples of 128 (got {n}, {s})");
            using var device = GpuDevice.Open(simulate: false);
            var rows = TensorCoreBench.Run(device, n, s, Math.Max(3, parse.GetValue(batches)), parse.GetValue(dump), line => cli.Err.WriteLine(line));
            object? simtRows = parse.GetValue(simt) ? KernelBench.Run(device, n, s, reps: 5) : null;
            if (parse.GetValue(json))
            {
                cli.Out.WriteLine(JsonSerializer.Serialize(new { device = device.Description, rows, simt = simtRows },
                    new JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
                return McApp.Ok;
            }
            cli.Out.WriteLine(device.Description);
            foreach (var r in rows)
                cli.Out.WriteLine($"{r.Kernel,-26} {r.Shape,-26} {r.Variant,-24} {r.MedianMs,9:F3} ms {r.Tflops,8:F1} TFLOP/s  err {r.SampledRelativeError:E2}  mma {r.PtxMmaSync} ld.local {r.PtxLocalAccesses} {r.Error}");
            return McApp.Ok;
        });
        return command;
    }
}
