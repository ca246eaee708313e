namespace ModelCompiler.Cli;

public static class Program
{
    public static int Main(string[] args) => McApp.Run(args, Console.Out, Console.Error);
}
