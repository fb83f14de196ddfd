from itlab.train.loop import main

main()
