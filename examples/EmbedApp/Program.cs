using ModelCompiler.Runtime;

// usage: EmbedApp <out/Model.dll from mc compile> <weights: .safetensors file, folder or index> <token id>...
if (args.Length < 3)
{
    Console.Error.WriteLine("usage: EmbedApp <Model.dll> <model.safetensors> <token id>...");
    return 2;
}
try
{
    var ids = args[2..].Select(long.Parse).ToArray();
    ICompiledModel model = Embed.Load(args[0]);
    var (logits, argmax) = Embed.Run(model, args[1], ids);
    Console.WriteLine($"logits[{logits.Length}] of the last token: {string.Join(", ", logits.Take(5).Select(v => v.ToString("G6")))}, ...");
    Console.WriteLine($"argmax: {argmax}");
    return 0;
}
catch (Exception e) when (e is McException or FormatException or OverflowException or IOException)
{
    Console.Error.WriteLine($"EmbedApp: {e.Message}");
    return 1;
}
